// Extracts the GitHub test data Blacksmith Mini uses from pinned @octokit packages.
//
//   cd scripts/extract-github-fixtures && npm ci && node extract.mjs
//
// Node 20+, no dependencies besides the three pinned data packages in package.json.
// Writes (relative to the repository root):
//   tests/fixtures/github/webhooks/workflow_job/<action>-<index>.json   real example payloads, verbatim
//   tests/fixtures/github/webhooks/ping/ping-<index>-<hook type>.json   real example payloads, verbatim
//   tests/fixtures/github/openapi-subset.json   REST operations we call, from @octokit/openapi
//   tests/fixtures/github/webhook-schemas.json  workflow_job + ping schemas, from @octokit/openapi-webhooks
//   tests/fixtures/github/VERSIONS.json         package versions and source files used
//
// Both subset files are self-contained: every non-schema `$ref` (responses, parameters,
// headers, examples) is inlined, and every `#/components/schemas/<name>` reached from the
// extracted operations is copied into the file's own `components.schemas`, so those `$ref`s
// resolve against the file root. Schemas are otherwise GitHub's text, unchanged (the REST
// spec is OpenAPI 3.0.3 and still uses `nullable`; tests/github_schema.py translates that).
//
// Output is deterministic: maps built here are written in sorted key order, objects copied
// from GitHub keep the source order (fixed by the pinned versions), 2-space indent, trailing
// newline. Each output directory this script owns is emptied first, so re-running never
// leaves stale files.

import { createRequire } from "node:module";
import { readFileSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, "..", "..");
const outDir = join(repoRoot, "tests", "fixtures", "github");
const require = createRequire(import.meta.url);

// ---------------------------------------------------------------- what we extract

// REST operations the autoscaler calls (operationIds as spelled in GitHub's spec).
const OPERATIONS = [
  // finding queued work (repository level only; there is no org-level runs list)
  "actions/list-workflow-runs-for-repo",
  "actions/list-jobs-for-workflow-run",
  "actions/get-job-for-workflow-run",
  // runners
  "actions/list-self-hosted-runners-for-repo",
  "actions/list-self-hosted-runners-for-org",
  "actions/get-self-hosted-runner-for-repo",
  "actions/get-self-hosted-runner-for-org",
  "actions/delete-self-hosted-runner-from-repo",
  "actions/delete-self-hosted-runner-from-org",
  "actions/generate-runner-jitconfig-for-repo",
  "actions/generate-runner-jitconfig-for-org",
  "actions/list-self-hosted-runner-groups-for-org",
  "actions/get-self-hosted-runner-group-for-org",
  "actions/list-repo-access-to-self-hosted-runner-group-in-org",
  "actions/create-registration-token-for-repo",
  "actions/create-registration-token-for-org",
  // rate limits
  "rate-limit/get",
  // GitHub App auth and installations
  "apps/get-authenticated",
  "apps/create-installation-access-token",
  "apps/get-repo-installation",
  "apps/get-org-installation",
  "apps/list-repos-accessible-to-installation",
  "repos/list-for-org",
  // webhook delivery recovery
  "apps/list-webhook-deliveries",
  "apps/redeliver-webhook-delivery",
  "repos/list-webhook-deliveries",
  "repos/redeliver-webhook-delivery",
  "orgs/list-webhook-deliveries",
  "orgs/redeliver-webhook-delivery",
];

// Webhook events: event name (X-GitHub-Event) -> action -> key in the spec's `webhooks`.
const WEBHOOKS = {
  ping: { "": "ping" },
  workflow_job: {
    queued: "workflow-job-queued",
    waiting: "workflow-job-waiting",
    in_progress: "workflow-job-in-progress",
    completed: "workflow-job-completed",
  },
};

const EXAMPLE_EVENTS = ["workflow_job", "ping"];

// ---------------------------------------------------------------- helpers

function pkgDir(name) {
  return dirname(require.resolve(`${name}/package.json`));
}

function readJson(path) {
  return JSON.parse(readFileSync(path, "utf8"));
}

function pkgVersion(name) {
  return readJson(join(pkgDir(name), "package.json")).version;
}

function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function sortedObject(obj) {
  const out = {};
  for (const k of Object.keys(obj).sort()) out[k] = obj[k];
  return out;
}

function writeJson(path, value) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(value, null, 2) + "\n");
  console.log(`wrote ${relative(repoRoot, path)} (${readFileSync(path).length} bytes)`);
}

function resetDir(path) {
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path, { recursive: true });
}

function pointerGet(doc, ref) {
  if (!ref.startsWith("#/")) throw new Error(`external $ref not supported: ${ref}`);
  let node = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (!isPlainObject(node) || !(key in node)) throw new Error(`dangling $ref: ${ref}`);
    node = node[key];
  }
  return node;
}

const SCHEMA_REF = /^#\/components\/schemas\/([^/]+)$/;

// Resolves refs against `doc`: `#/components/schemas/*` stay as $ref (their names are
// collected into `schemaNames`), any other local $ref (responses, parameters, headers,
// examples, request bodies) is replaced by a resolved copy of its target.
function resolveNonSchemaRefs(doc, node, schemaNames, stack = []) {
  if (Array.isArray(node)) return node.map((v) => resolveNonSchemaRefs(doc, v, schemaNames, stack));
  if (!isPlainObject(node)) return node;
  if (typeof node.$ref === "string") {
    const m = SCHEMA_REF.exec(node.$ref);
    if (m) {
      schemaNames.add(decodeURIComponent(m[1]));
      return node;
    }
    if (stack.includes(node.$ref)) throw new Error(`cyclic non-schema $ref: ${node.$ref}`);
    const target = pointerGet(doc, node.$ref);
    const siblings = Object.keys(node).filter((k) => k !== "$ref");
    if (siblings.length) throw new Error(`$ref with siblings not supported: ${node.$ref}`);
    return resolveNonSchemaRefs(doc, target, schemaNames, [...stack, node.$ref]);
  }
  const out = {};
  for (const [k, v] of Object.entries(node)) out[k] = resolveNonSchemaRefs(doc, v, schemaNames, stack);
  return out;
}

// Copies the closure of the named component schemas (following nested $refs).
function schemaClosure(doc, names) {
  const out = {};
  const todo = [...names];
  while (todo.length) {
    const name = todo.pop();
    if (name in out) continue;
    const schema = doc.components?.schemas?.[name];
    if (schema === undefined) throw new Error(`missing component schema: ${name}`);
    const found = new Set();
    out[name] = resolveNonSchemaRefs(doc, schema, found);
    for (const n of found) if (!(n in out)) todo.push(n);
  }
  return sortedObject(out);
}

// Reduces a resolved media-type map to {schema, examples} for application/json
// (the only content type our operations use; anything else is kept under `content`).
function mediaSummary(content) {
  if (!content) return {};
  const out = {};
  const json = content["application/json"];
  if (json) {
    if (json.schema !== undefined) out.schema = json.schema;
    if (json.examples) {
      out.examples = {};
      for (const [name, ex] of Object.entries(json.examples)) out.examples[name] = ex.value;
    } else if (json.example !== undefined) {
      out.examples = { default: json.example };
    }
  }
  const others = Object.keys(content).filter((k) => k !== "application/json");
  if (others.length) {
    out.content = {};
    for (const k of others.sort()) out.content[k] = content[k];
  }
  return out;
}

// ---------------------------------------------------------------- REST subset

function extractRest() {
  const name = "@octokit/openapi";
  const file = "generated/api.github.com.json";
  const spec = readJson(join(pkgDir(name), file));

  const byId = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (isPlainObject(op) && typeof op.operationId === "string") {
        byId.set(op.operationId, { method, path, op, pathParams: item.parameters ?? [] });
      }
    }
  }

  const missing = OPERATIONS.filter((id) => !byId.has(id));
  if (missing.length) throw new Error(`operationIds not in ${name}/${file}: ${missing.join(", ")}`);

  const schemaNames = new Set();
  const operations = {};
  for (const id of [...OPERATIONS].sort()) {
    const { method, path, op, pathParams } = byId.get(id);
    const r = (v) => resolveNonSchemaRefs(spec, v, schemaNames);
    const entry = {
      operationId: id,
      method: method.toUpperCase(),
      path,
      summary: op.summary,
      docs: op.externalDocs?.url ?? null,
      parameters: r([...pathParams, ...(op.parameters ?? [])]).map((p) => {
        const out = { name: p.name, in: p.in, required: p.required === true };
        if (p.schema !== undefined) out.schema = p.schema;
        if (p.description !== undefined) out.description = p.description;
        return out;
      }),
      requestBody: null,
      responses: {},
    };
    if (op.requestBody) {
      const body = r(op.requestBody);
      entry.requestBody = { required: body.required === true, ...mediaSummary(body.content) };
    }
    const statuses = Object.keys(op.responses).sort();
    for (const status of statuses) {
      const resp = r(op.responses[status]);
      const out = { description: resp.description ?? "" };
      if (resp.headers) {
        out.headers = {};
        for (const h of Object.keys(resp.headers).sort()) out.headers[h] = resp.headers[h];
      }
      Object.assign(out, mediaSummary(resp.content));
      entry.responses[status] = out;
    }
    if (op["x-github-breaking-changes"] !== undefined) {
      entry["x-github-breaking-changes"] = op["x-github-breaking-changes"];
    }
    operations[id] = entry;
  }

  const out = {
    $comment:
      "Generated by scripts/extract-github-fixtures/extract.mjs; do not edit. " +
      "Schemas are OpenAPI 3.0 schema objects (`nullable` etc.); use tests/github_schema.py to validate.",
    source: {
      package: name,
      version: pkgVersion(name),
      file,
      openapi: spec.openapi,
      // The package ships one api.github.com description (no dated file). It is the
      // default API version; the newer 2026-03-10 version appears only as
      // `x-github-breaking-changes` patches, which are kept but not applied.
      apiVersion: "2022-11-28",
    },
    operations,
    components: { schemas: schemaClosure(spec, schemaNames) },
  };
  writeJson(join(outDir, "openapi-subset.json"), out);
  return { name, version: pkgVersion(name), file, operations: Object.keys(operations) };
}

// ---------------------------------------------------------------- webhook schemas

function extractWebhookSchemas() {
  const name = "@octokit/openapi-webhooks";
  const file = "generated/api.github.com.json";
  const spec = readJson(join(pkgDir(name), file));

  const schemaNames = new Set();
  const events = {};
  for (const event of Object.keys(WEBHOOKS).sort()) {
    events[event] = {};
    for (const action of Object.keys(WEBHOOKS[event]).sort()) {
      const key = WEBHOOKS[event][action];
      const hook = spec.webhooks?.[key]?.post;
      if (!hook) throw new Error(`webhook ${key} not in ${name}/${file}`);
      const body = resolveNonSchemaRefs(spec, hook.requestBody, schemaNames);
      const headers = resolveNonSchemaRefs(spec, hook.parameters ?? [], schemaNames)
        .filter((p) => p.in === "header")
        .map((p) => ({ name: p.name, required: p.required === true, example: p.example ?? null }));
      events[event][action] = {
        specKey: key,
        operationId: hook.operationId,
        docs: hook.externalDocs?.url ?? null,
        headers,
        ...mediaSummary(body.content),
      };
    }
  }

  const out = {
    $comment:
      "Generated by scripts/extract-github-fixtures/extract.mjs; do not edit. " +
      "`events[<X-GitHub-Event>][<action>]` (ping has the action \"\"). Use tests/github_schema.py to validate.",
    source: { package: name, version: pkgVersion(name), file, openapi: spec.openapi },
    events,
    components: { schemas: schemaClosure(spec, schemaNames) },
  };
  writeJson(join(outDir, "webhook-schemas.json"), out);
  return { name, version: pkgVersion(name), file };
}

// ---------------------------------------------------------------- webhook examples

function extractExamples() {
  const name = "@octokit/webhooks-examples";
  const file = "api.github.com/index.json";
  const index = readJson(join(pkgDir(name), file));
  const written = {};

  const wjDir = join(outDir, "webhooks", "workflow_job");
  const pingDir = join(outDir, "webhooks", "ping");
  resetDir(wjDir);
  resetDir(pingDir);

  for (const event of EXAMPLE_EVENTS) {
    const entry = index.find((e) => e.name === event);
    if (!entry) throw new Error(`no ${event} examples in ${name}/${file}`);
    written[event] = [];
    entry.examples.forEach((payload, i) => {
      let path;
      if (event === "workflow_job") {
        path = join(wjDir, `${payload.action}-${i}.json`);
      } else {
        const hookType = String(payload.hook?.type ?? "unknown").toLowerCase();
        path = join(pingDir, `ping-${i}-${hookType}.json`);
      }
      writeJson(path, payload); // verbatim: same keys, same order, same values
      written[event].push(relative(outDir, path));
    });
  }
  return { name, version: pkgVersion(name), file, written };
}

// ---------------------------------------------------------------- main

const rest = extractRest();
const hooks = extractWebhookSchemas();
const examples = extractExamples();

writeJson(join(outDir, "VERSIONS.json"), {
  $comment: "Generated by scripts/extract-github-fixtures/extract.mjs; versions pinned in its package.json/package-lock.json.",
  generator: "scripts/extract-github-fixtures/extract.mjs",
  packages: sortedObject({
    [rest.name]: { version: rest.version, license: "MIT", file: rest.file },
    [hooks.name]: { version: hooks.version, license: "MIT", file: hooks.file },
    [examples.name]: { version: examples.version, license: "MIT", file: examples.file },
  }),
  operations: rest.operations,
  examples: examples.written,
});
