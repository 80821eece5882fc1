"""The guest's cache proxy (``images/guest/blacksmith-cache-proxy.py``) with GitHub's client.

A job's cache step goes to the proxy (the patched runner leaves ``ACTIONS_RESULTS_URL`` and
``ACTIONS_CACHE_URL`` as the guest agent set them). While the host's cache is up, entries land
there, under the VM's own token; with the host's cache stopped, the same step succeeds against a
stand-in for GitHub's cache (a second service with a secret of its own, so only the runtime
token the client sends, GitHub's, opens it); v1, which has no fallback, still does not fail
the step. When the host's cache is back, the proxy returns to it.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from .node_support import NODE, CacheProcess, Job, digests, ensure_node_modules, wait_for

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the @actions/cache harness needs Node 20+"
)
PROXY = Path(__file__).resolve().parents[2] / "images" / "guest" / "blacksmith-cache-proxy.py"
GITHUB_SECRET = b"stand-in-for-githubs-own-secret-0123456789"


class ProxyProcess:
    """The proxy on a free loopback port, to ``cache`` with ``token``, else to ``fallback``."""

    def __init__(
        self, root: Path, *, cache: str, token: str, fallback: str, health_ttl: float = 0.2
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        token_file = root / "token"
        token_file.write_text(token)
        where = ["--cache-url", cache, "--token-file", str(token_file)] if cache else []
        self.log_path = root / "proxy.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                *(sys.executable, str(PROXY), "--port", "0", *where),
                *("--fallback", fallback),
                *("--health-ttl", str(health_ttl)),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        line = wait_for(self._announced, what="the proxy to listen")
        self.url = line.rsplit(" ", 1)[1]

    def _announced(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the proxy exited:\n{self.log_path.read_text()}")
        lines = self.log_path.read_text().splitlines()
        return next((line for line in lines if "listening on" in line), None)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


@dataclass
class ProxiedJob(Job):
    """A job whose cache variables point at the proxy; its runtime token is GitHub's."""

    via: str = ""

    def env(self, place: Path) -> dict[str, str]:
        found = super().env(place)
        found["ACTIONS_RESULTS_URL"] = found["ACTIONS_CACHE_URL"] = self.via
        return found


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[CacheProcess, CacheProcess, ProxyProcess]]:
    ensure_node_modules()
    ours = CacheProcess(tmp_path / "ours")
    github = CacheProcess(tmp_path / "github", secret=GITHUB_SECRET)
    vm_token = Job(service=ours, protocol="v2", root=tmp_path).token  # minted by our secret
    proxy = ProxyProcess(tmp_path / "proxy", cache=ours.url, token=vm_token, fallback=github.url)
    yield ours, github, proxy
    proxy.stop()
    github.stop()
    if ours.process.poll() is None:
        ours.stop()


def keys(service: CacheProcess) -> set[str]:
    return {entry["key"] for entry in service.admin("entries")["entries"]}


def job(github: CacheProcess, proxy: ProxyProcess, root: Path, protocol: str) -> ProxiedJob:
    return ProxiedJob(
        service=github, protocol=protocol, root=root, secret=GITHUB_SECRET, via=proxy.url
    )


def test_up_it_uses_the_hosts_cache_and_down_githubs(
    world: tuple[CacheProcess, CacheProcess, ProxyProcess], tmp_path: Path
) -> None:
    ours, github, proxy = world
    step = job(github, proxy, tmp_path / "jobs", "v2")
    first = {"blob.bin": os.urandom(300_000), "notes.txt": b"while the host's cache is up\n"}
    assert step.save("deps-up", first).value > 0
    assert keys(ours) == {"deps-up"} and keys(github) == set()  # under the VM's token
    restored, tree = step.restore("deps-up")
    assert restored.value == "deps-up" and tree == digests(first)

    ours.stop()  # the host's cache goes away mid-job
    second = {"blob.bin": os.urandom(200_000)}
    saved = step.save("deps-down", second)
    assert saved.value > 0, saved.output  # the step succeeded, on GitHub's cache
    assert keys(github) == {"deps-down"}
    restored, tree = step.restore("deps-down")
    assert restored.value == "deps-down" and tree == digests(second)
    log = proxy.log()
    assert "CreateCacheEntry -> 200 (host)" in log and "CreateCacheEntry -> 200 (github)" in log
    assert step.token not in log


def test_v1_without_a_fallback_never_fails_the_step(
    world: tuple[CacheProcess, CacheProcess, ProxyProcess], tmp_path: Path
) -> None:
    ours, github, proxy = world
    ours.stop()
    step = job(github, proxy, tmp_path / "jobs", "v1")
    saved = step.save("v1-down", {"blob.bin": os.urandom(10_000)})
    assert saved.value == -1  # not saved, and said as a warning: the step goes on
    restored, _ = step.restore("v1-down")
    assert restored.value is None
    assert keys(github) == set()


def test_back_up_it_returns_to_the_hosts_cache(
    world: tuple[CacheProcess, CacheProcess, ProxyProcess], tmp_path: Path
) -> None:
    ours, github, proxy = world
    port = ours.port
    ours.stop()
    step = job(github, proxy, tmp_path / "jobs", "v2")
    assert step.save("while-down", {"a": b"1" * 1000}).value > 0
    assert keys(github) == {"while-down"}
    again = CacheProcess(ours.root, port=port)  # the same directory and address
    tries = itertools.count()

    def landed_on_ours() -> bool:
        key = f"after-{next(tries)}"
        assert step.save(key, {"a": key.encode() * 100}).value > 0  # never fails meanwhile
        return key in keys(again)

    try:
        wait_for(landed_on_ours, what="a save to land on the host's cache again")
    finally:
        again.stop()


def test_a_request_the_host_refuses_goes_to_github_at_once(tmp_path: Path) -> None:
    """The proxy still believes the host's cache up (its health answer is remembered for a
    minute), the host refuses the connection: that very request is sent on to GitHub."""
    ensure_node_modules()
    ours = CacheProcess(tmp_path / "ours")
    github = CacheProcess(tmp_path / "github", secret=GITHUB_SECRET)
    vm_token = Job(service=ours, protocol="v2", root=tmp_path).token
    proxy = ProxyProcess(
        tmp_path / "proxy", cache=ours.url, token=vm_token, fallback=github.url, health_ttl=60
    )
    try:
        step = job(github, proxy, tmp_path / "jobs", "v2")
        assert step.save("first", {"a": b"1" * 1000}).value > 0  # health checked: up
        ours.stop()
        assert step.save("second", {"a": b"2" * 1000}).value > 0
        assert keys(github) == {"second"}
        assert (
            "host cache unreachable (ConnectionRefusedError); using GitHub's cache" in proxy.log()
        )
    finally:
        proxy.stop()
        github.stop()


def test_calls_that_are_not_the_caches_always_go_to_github(
    world: tuple[CacheProcess, CacheProcess, ProxyProcess],
) -> None:
    """The artifact service shares ``ACTIONS_RESULTS_URL``: its calls pass through to GitHub
    untouched (its token, its body) while the host's cache is up."""
    _, _, proxy = world
    artifact = "twirp/github.actions.results.api.v1.ArtifactService/CreateArtifact"
    answer = httpx2.post(
        proxy.url + artifact, json={"name": "logs"}, headers={"authorization": "Bearer gh"}
    )
    assert answer.status_code == 404  # the stand-in serves no artifacts; GitHub would
    assert f"POST /{artifact} -> 404 (github)" in proxy.log()


def test_without_a_host_cache_every_call_goes_to_github(tmp_path: Path) -> None:
    ensure_node_modules()
    github = CacheProcess(tmp_path / "github", secret=GITHUB_SECRET)
    proxy = ProxyProcess(tmp_path / "proxy", cache="", token="", fallback=github.url)
    try:
        step = job(github, proxy, tmp_path / "jobs", "v2")
        files = {"a": os.urandom(5000)}
        assert step.save("plain", files).value > 0
        restored, tree = step.restore("plain")
        assert restored.value == "plain" and tree == digests(files)
        assert "every call goes to GitHub" in proxy.log()
    finally:
        proxy.stop()
        github.stop()
