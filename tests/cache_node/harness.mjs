// Drives GitHub's own cache client, @actions/cache, against the co-located cache service.
//
//   node harness.mjs save    --lib v2|v1 --key K --path P [--path P2] [--stall-after BYTES]
//   node harness.mjs restore --lib v2|v1 --key K --path P [--restore-key R]... [--lookup-only]
//   node harness.mjs upload-archive --key K --file F      (bench: the v2 transfer alone)
//   node harness.mjs download-archive --key K --file F    (bench: the download alone)
//
// The caller sets the environment the runner sets for a step (ACTIONS_CACHE_SERVICE_V2,
// ACTIONS_RESULTS_URL, ACTIONS_CACHE_URL, ACTIONS_RUNTIME_TOKEN, GITHUB_REF, GITHUB_BASE_REF,
// GITHUB_WORKSPACE, RUNNER_TEMP, ACTIONS_CACHE_MODE) and reads the last line starting with
// "@@RESULT " (JSON: the value saveCache / restoreCache returned). The client's own log lines
// (core.info, ::warning::, ::debug::) go to stdout before it.
//
// --lib v2 is the current client (@actions/cache, pinned in package.json): it speaks v2 when
// ACTIONS_CACHE_SERVICE_V2 is set and v1 otherwise. --lib v1 is the last release that speaks
// only v1 (actions-cache-v1, an npm alias of @actions/cache 3.3.0).
//
// --stall-after BYTES: the archive upload stops after BYTES bytes and never resumes (the
// harness prints "@@STALLED"), so the caller can kill this process midway through an upload.
// --resolve-blob-host: *.blob.core.windows.net resolves to 127.0.0.1, so the client takes its
// Azure SDK download path (HEAD + ranged GETs) against the service on loopback.
//
// upload-archive / download-archive move one existing file with the libraries and options the
// client uses (BlockBlobClient.uploadFile with 64 MiB blocks, 8 in parallel, single shot up to
// 128 MiB; one http-client GET piped to a file), around the Twirp calls, without tar: they
// print the seconds the transfer took, for the benchmark.

import dns from 'node:dns';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { Transform } from 'node:stream';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    lib: { type: 'string', default: 'v2' },
    key: { type: 'string' },
    path: { type: 'string', multiple: true, default: [] },
    'restore-key': { type: 'string', multiple: true, default: [] },
    'lookup-only': { type: 'boolean', default: false },
    'stall-after': { type: 'string' },
    'resolve-blob-host': { type: 'boolean', default: false },
    file: { type: 'string' },
    version: { type: 'string', default: 'bench' },
  },
});

function stallUploadsAfter(limit) {
  const original = fs.createReadStream;
  let passed = 0;
  let announced = false;
  fs.createReadStream = function createReadStream(file, options) {
    const stream = original.call(this, file, options);
    if (!/cache\.t(zst|gz)$/.test(String(file))) return stream;
    const gate = new Transform({
      transform(chunk, _encoding, callback) {
        if (passed >= limit) {
          if (!announced) {
            announced = true;
            process.stdout.write('@@STALLED\n');
          }
          return; // never calls back: the upload hangs here until the process is killed
        }
        const room = limit - passed;
        passed += Math.min(room, chunk.length);
        if (chunk.length > room) {
          this.push(chunk.subarray(0, room));
          return; // the rest is held back
        }
        callback(null, chunk);
      },
    });
    stream.on('error', (error) => gate.destroy(error));
    return stream.pipe(gate);
  };
  syncBuiltinESMExports();
}

function resolveBlobHostToLoopback() {
  const original = dns.lookup;
  dns.lookup = function lookup(host, options, callback) {
    if (typeof options === 'function') {
      callback = options;
      options = {};
    }
    if (String(host).endsWith('.blob.core.windows.net')) {
      if (options && options.all) {
        process.nextTick(callback, null, [{ address: '127.0.0.1', family: 4 }]);
      } else {
        process.nextTick(callback, null, '127.0.0.1', 4);
      }
      return;
    }
    return original.call(this, host, options, callback);
  };
  syncBuiltinESMExports();
}

if (values['stall-after']) stallUploadsAfter(Number(values['stall-after']));
if (values['resolve-blob-host']) resolveBlobHostToLoopback();

async function twirp(method, body) {
  const url = new URL(
    `/twirp/github.actions.results.api.v1.CacheService/${method}`,
    process.env.ACTIONS_RESULTS_URL,
  );
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${process.env.ACTIONS_RUNTIME_TOKEN}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method}: ${response.status} ${await response.text()}`);
  return response.json();
}

async function uploadArchive(key, file, version) {
  const { BlockBlobClient } = await import('@azure/storage-blob');
  const created = await twirp('CreateCacheEntry', { key, version });
  if (!created.ok) throw new Error(`CreateCacheEntry: ${JSON.stringify(created)}`);
  const started = performance.now();
  await new BlockBlobClient(created.signed_upload_url).uploadFile(file, {
    blockSize: 64 * 1024 * 1024,
    concurrency: 8,
    maxSingleShotSize: 128 * 1024 * 1024,
  });
  const seconds = (performance.now() - started) / 1000;
  const size = String(fs.statSync(file).size);
  const finalized = await twirp('FinalizeCacheEntryUpload', { key, version, size_bytes: size });
  return finalized.ok ? seconds : null;
}

async function downloadArchive(key, file, version) {
  const { HttpClient } = await import('@actions/http-client');
  const { pipeline } = await import('node:stream/promises');
  const found = await twirp('GetCacheEntryDownloadURL', { key, version });
  if (!found.ok) return null;
  const started = performance.now();
  const response = await new HttpClient('actions/cache').get(found.signed_download_url);
  await pipeline(response.message, fs.createWriteStream(file));
  return (performance.now() - started) / 1000;
}

const op = positionals[0];
let value;
if (op === 'upload-archive') {
  value = await uploadArchive(values.key, values.file, values.version);
} else if (op === 'download-archive') {
  value = await downloadArchive(values.key, values.file, values.version);
} else if (op === 'save' || op === 'restore') {
  const loaded = await import(values.lib === 'v1' ? 'actions-cache-v1' : '@actions/cache');
  const cache = loaded.saveCache ? loaded : loaded.default;
  value =
    op === 'save'
      ? await cache.saveCache(values.path, values.key)
      : await cache.restoreCache(values.path, values.key, values['restore-key'], {
          lookupOnly: values['lookup-only'],
        });
} else {
  throw new Error(`unknown operation ${op}`);
}
process.stdout.write(`@@RESULT ${JSON.stringify({ op, value: value ?? null })}\n`);
