"""GitHub's own client against our cache: ``@actions/cache`` saving and restoring real files.

Every scenario runs twice: on v2 with the pinned current client (Twirp + Azure Blob) and on v1
with ``@actions/cache`` 3.3.0, the last release that speaks only ``_apis/artifactcache``. The
service runs as a subprocess on a free loopback port; assertions read the client's return
values, its log lines, the restored bytes and the service's admin API.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .node_support import NODE, CacheProcess, Job, digests, ensure_node_modules, wait_for

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the @actions/cache harness needs Node 20+"
)
PROTOCOLS = pytest.mark.parametrize("protocol", ["v2", "v1"])
ANOTHER_JOB = "another job may be creating this cache"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheProcess]:
    ensure_node_modules()
    found = CacheProcess(tmp_path_factory.mktemp("cache-service"))
    yield found
    found.stop()


@pytest.fixture(scope="module")
def small_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheProcess]:
    ensure_node_modules()
    found = CacheProcess(tmp_path_factory.mktemp("small-cache-service"), repo_cap=3_500_000)
    yield found
    found.stop()


MakeJob = Callable[..., Job]


@pytest.fixture
def jobs(service: CacheProcess, tmp_path: Path, protocol: str) -> MakeJob:
    def job(**options: Any) -> Job:
        return Job(service=service, protocol=protocol, root=tmp_path, **options)

    return job


def files(seed: str, size: int = 100_000) -> dict[str, bytes]:
    return {
        "blob.bin": os.urandom(size),
        "nested/deeper/notes.txt": f"seed {seed}\n".encode() * 50,
        "empty": b"",
    }


@PROTOCOLS
def test_a_round_trip_is_byte_identical(jobs: MakeJob, protocol: str) -> None:
    main = jobs()
    saved = files("round", 2_000_000)
    result = main.save(f"{protocol}-round", saved)
    assert isinstance(result.value, int) and result.value > 0, result.output
    restored, tree = main.restore(f"{protocol}-round")
    assert restored.value == f"{protocol}-round", restored.output
    assert tree == digests(saved)


@PROTOCOLS
def test_the_azure_sdk_download_path_round_trips(jobs: MakeJob, protocol: str) -> None:
    # A URL on *.blob.core.windows.net makes the client use the Azure SDK (HEAD, ranged GETs)
    main = jobs(host="bmcache.blob.core.windows.net")
    saved = files("sdk", 9_000_000)  # more than two of the SDK's 4 MiB ranges
    assert main.save(f"{protocol}-sdk", saved).value > 0
    restored, tree = main.restore(f"{protocol}-sdk")
    assert restored.value == f"{protocol}-sdk" and tree == digests(saved), restored.output
    log = main.service.log_path.read_text()
    assert re.search(r'"HEAD /_blob/cache/entries/\d+\?.* 200', log)
    assert re.search(r'"GET /_blob/cache/entries/\d+\?.* 206', log)


@PROTOCOLS
def test_restore_keys_fall_back_to_the_newest_prefix_match(jobs: MakeJob, protocol: str) -> None:
    main = jobs()
    older, newer = files("older"), files("newer")
    assert main.save(f"{protocol}-deps-aaa", older).value > 0
    assert main.save(f"{protocol}-deps-bbb", newer).value > 0
    restored, tree = main.restore(
        f"{protocol}-deps-zzz", f"{protocol}-nothing-", f"{protocol}-deps-"
    )
    assert restored.value == f"{protocol}-deps-bbb" and tree == digests(newer), restored.output
    exact, tree = main.restore(f"{protocol}-deps-aaa", f"{protocol}-deps-")
    assert exact.value == f"{protocol}-deps-aaa" and tree == digests(older)


@PROTOCOLS
def test_a_feature_branch_reads_main_but_main_never_reads_the_branch(
    jobs: MakeJob, protocol: str
) -> None:
    main, feature = jobs(), jobs(ref="refs/heads/feature", vm="vm-feature")
    on_main = files("main")
    assert main.save(f"{protocol}-iso", on_main).value > 0
    read, tree = feature.restore(f"{protocol}-iso")
    assert read.value == f"{protocol}-iso" and tree == digests(on_main), read.output
    assert feature.save(f"{protocol}-feat", files("feature")).value > 0
    assert main.restore(f"{protocol}-feat")[0].value is None
    assert main.restore(f"{protocol}-x", f"{protocol}-fe")[0].value is None
    assert feature.restore(f"{protocol}-feat")[0].value == f"{protocol}-feat"


@PROTOCOLS
def test_a_pull_requests_save_does_not_land_in_mains_scope(jobs: MakeJob, protocol: str) -> None:
    main = jobs()
    pull = jobs(ref="refs/pull/9/merge", base="main", vm="vm-pull")
    saved = pull.save(f"{protocol}-pr", files("pr"))
    assert saved.value > 0, saved.output
    assert main.restore(f"{protocol}-pr")[0].value is None
    assert pull.restore(f"{protocol}-pr")[0].value == f"{protocol}-pr"
    listed = main.service.admin("entries", key=f"{protocol}-pr")["entries"]
    assert [entry["ref"] for entry in listed] == ["refs/pull/9/merge"]


@PROTOCOLS
def test_of_two_concurrent_saves_one_wins_and_the_other_is_told(
    jobs: MakeJob, protocol: str
) -> None:
    first, second = jobs(vm="vm-a"), jobs(vm="vm-b")
    one, two = files("one", 4_000_000), files("two", 4_000_000)
    with first.saving(f"{protocol}-race", one) as a, second.saving(f"{protocol}-race", two) as b:
        a.wait(timeout=120)
        b.wait(timeout=120)
        results = {"one": a.result(), "two": b.result()}
    winners = [name for name, result in results.items() if result.value > 0]
    losers = [name for name, result in results.items() if result.value == -1]
    assert len(winners) == 1 and len(losers) == 1, {k: r.output for k, r in results.items()}
    assert ANOTHER_JOB in results[losers[0]].output
    restored, tree = jobs(vm="vm-c").restore(f"{protocol}-race")
    assert tree == digests(one if winners == ["one"] else two), restored.output


@PROTOCOLS
def test_an_upload_killed_midway_is_never_served(jobs: MakeJob, protocol: str) -> None:
    main = jobs()
    key = f"{protocol}-killed"
    with main.saving(key, files("killed", 6_000_000), stall_after=3 << 20) as save:
        wait_for(lambda: "@@STALLED" in save.output(), what="the upload to stall")

        def receiving() -> bool:
            uploads = main.service.admin("uploads")["uploads"]
            return any(u["key"] == key and u["received_bytes"] >= 1 << 20 for u in uploads)

        wait_for(receiving, what="the service to receive part of the upload")
        save.send_signal(signal.SIGKILL)
        save.wait(timeout=30)

    def discarded() -> bool:
        uploads = main.service.admin("uploads")["uploads"]
        return all(u["received_bytes"] == 0 for u in uploads if u["key"] == key)

    wait_for(discarded, what="the partial part to be discarded")
    assert main.restore(key)[0].value is None
    assert main.service.admin("entries", key=key)["total_count"] == 0


@PROTOCOLS
def test_least_recently_used_entries_are_evicted_under_the_cap(
    small_service: CacheProcess, tmp_path: Path, protocol: str
) -> None:
    repository = f"acme/evict-{protocol}"
    main = Job(service=small_service, protocol=protocol, root=tmp_path, repository=repository)
    trees = {name: files(name, 1_200_000) for name in ("a", "b", "c")}
    assert main.save(f"{protocol}-a", trees["a"]).value > 0
    assert main.save(f"{protocol}-b", trees["b"]).value > 0
    assert main.restore(f"{protocol}-a")[0].value == f"{protocol}-a"  # "a" is now the freshest
    assert main.save(f"{protocol}-c", trees["c"]).value > 0  # 3 x 1.2 MB > 3.5 MB: one must go
    assert main.restore(f"{protocol}-b")[0].value is None
    for name in ("a", "c"):
        restored, tree = main.restore(f"{protocol}-{name}")
        assert tree == digests(trees[name]), restored.output
    counters = small_service.admin("metrics")["repositories"][repository]
    assert counters["evictions"] == 1
    assert small_service.admin("metrics")["usage_bytes"][repository] <= 3_500_000


@PROTOCOLS
def test_a_token_for_repository_a_is_refused_on_repository_b(jobs: MakeJob, protocol: str) -> None:
    a, b = jobs(repository="acme/a", vm="vm-a"), jobs(repository="acme/b", vm="vm-b")
    assert a.save(f"{protocol}-private", files("a")).value > 0
    assert b.restore(f"{protocol}-private")[0].value is None
    forged = jobs(repository="acme/a", vm="vm-f", secret=b"not-the-control-planes-secret-0000")
    assert forged.restore(f"{protocol}-private")[0].value is None
    assert forged.save(f"{protocol}-forged", files("f")).value == -1
    assert a.restore(f"{protocol}-private")[0].value == f"{protocol}-private"


@PROTOCOLS
def test_a_read_only_token_cannot_save_and_a_write_only_one_cannot_restore(
    jobs: MakeJob, protocol: str
) -> None:
    main = jobs()
    assert main.save(f"{protocol}-mode", files("mode")).value > 0
    reader = jobs(mode="read", vm="vm-r")
    refused = reader.save(f"{protocol}-mode-2", files("r"))
    assert refused.value == -1 and "cache write denied" in refused.output, refused.output
    writer = jobs(mode="write-only", vm="vm-w")
    unread = writer.restore(f"{protocol}-mode")[0]
    assert unread.value is None
    assert ("cache read denied" if protocol == "v2" else "responded with 403") in unread.output
    if protocol == "v2":  # the current client honours ACTIONS_CACHE_MODE itself, too
        skipped = jobs(mode="read", client_mode="read", vm="vm-s").save(f"{protocol}-s", files("s"))
        assert skipped.value == -1 and "Cache save skipped" in skipped.output


def test_no_token_or_url_signature_reached_the_services_log(service: CacheProcess) -> None:
    log = service.log_path.read_text()
    assert "bmc1." not in log and "Bearer" not in log
    assert re.findall(r"sig=([^&\s\"]+)", log) == ["***"] * len(re.findall(r"sig=", log))
    assert "sig=***" in log  # the access log was on, and redacted
