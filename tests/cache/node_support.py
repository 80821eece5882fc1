"""Running the cache service as a subprocess and GitHub's own client (``tests/cache_node``) on it.

``CacheProcess`` starts ``python -m blacksmith_mini.cache.serve`` on a free loopback port and
waits for it to answer. ``Job`` is one job's view: its token (minted as the control plane
would, from ref, base ref and cache mode; or given, with the URL, by a VM's boot data), a
workspace, and ``save`` / ``restore`` through ``harness.mjs``, which call ``saveCache`` /
``restoreCache`` of the pinned npm package.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from blacksmith_mini.cache import scope, tokens

HARNESS_DIR = Path(__file__).resolve().parents[1] / "cache_node"
HARNESS = HARNESS_DIR / "harness.mjs"
SECRET = b"node-harness-secret-0123456789abcdef"
ADMIN = "node-harness-admin-token"
NODE = shutil.which("node")


def wait_for(condition: Callable[[], Any], *, what: str, timeout: float = 60.0) -> Any:
    """Polls ``condition`` until it returns something truthy (a deadline, not a sleep-and-hope)."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ensure_node_modules() -> None:
    """``npm ci`` into ``tests/cache_node`` unless both client versions are already there."""
    wanted = [
        HARNESS_DIR / "node_modules" / "@actions" / "cache" / "package.json",
        HARNESS_DIR / "node_modules" / "actions-cache-v1" / "package.json",
    ]
    with (HARNESS_DIR / ".npm-ci.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs must not install at once
        if all(path.exists() for path in wanted):
            return
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=HARNESS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise AssertionError(f"npm ci in {HARNESS_DIR} failed:\n{done.stdout}\n{done.stderr}")


class CacheProcess:
    """The service on ``127.0.0.1:<free port>``, its directory and log under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        repo_cap: int = 10 << 30,
        host_cap: int = 100 << 30,
        secret: bytes = SECRET,
        port: int = 0,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "secret").write_bytes(secret)
        (root / "admin").write_text(ADMIN)
        self.log_path = root / "service.log"
        self._log = self.log_path.open("w")
        command = [
            sys.executable,
            "-m",
            "blacksmith_mini.cache.serve",
            "--port",
            str(port),
            "--dir",
            str(root / "cache"),
            "--secret-file",
            str(root / "secret"),
            "--admin-token-file",
            str(root / "admin"),
            "--repo-cap",
            str(repo_cap),
            "--host-cap",
            str(host_cap),
            "--access-log",
        ]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        line = wait_for(self._announced, what="the cache service to start")
        self.url: str = line.rsplit(" ", 1)[1]
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])
        wait_for(self._healthy, what="the cache service to answer")

    def _announced(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the cache service exited:\n{self.log_path.read_text()}")
        first = self.log_path.read_text().splitlines()[:1]
        return first[0] if first and first[0].startswith("cache service listening") else None

    def _healthy(self) -> bool:
        try:
            return httpx2.get(f"{self.url}_health", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return False

    def admin(self, path: str, **params: str) -> Any:
        answer = httpx2.get(
            f"{self.url}api/cache/{path}",
            params=params,
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        answer.raise_for_status()
        return answer.json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@dataclass
class Result:
    value: Any
    output: str


def _result(output: str) -> Result:
    lines = [line for line in output.splitlines() if line.startswith("@@RESULT ")]
    if not lines:
        raise AssertionError(f"the harness printed no result:\n{output}")
    return Result(value=json.loads(lines[-1].removeprefix("@@RESULT "))["value"], output=output)


@dataclass
class Job:
    """One job on ``ref``: a token bound to its repository and scopes, and a place to work."""

    service: CacheProcess | None  # None: ``given`` says where the cache is
    protocol: str  # "v2" (@actions/cache, Twirp) or "v1" (@actions/cache 3.3.0, REST)
    root: Path
    repository: str = "acme/widgets"
    ref: str = "refs/heads/main"
    base: str | None = None
    mode: str | None = None
    client_mode: str | None = None
    vm: str = "vm-1"
    secret: bytes = SECRET
    host: str = "127.0.0.1"
    given: tuple[str, str] | None = None  # (url, token) from a VM's boot data, as is
    _runs: int = field(default=0, init=False)

    @property
    def token(self) -> str:
        if self.given is not None:
            return self.given[1]
        scopes = scope.own_scopes(ref=self.ref, default_branch="main", base_ref=self.base)
        scopes = scope.apply_mode(scopes, self.mode)
        claim = tokens.Claim(
            repository=self.repository,
            write=scopes.write,
            reads=scopes.reads,
            expires_at=int(time.time()) + 3600,
            vm_id=self.vm,
        )
        return tokens.mint(self.secret, claim)

    def workspace(self) -> Path:
        self._runs += 1
        found = self.root / f"{self.vm}-{self._runs}"
        (found / "temp").mkdir(parents=True)
        (found / "work").mkdir()
        return found

    def env(self, place: Path) -> dict[str, str]:
        if self.given is not None:
            url = self.given[0]
        else:
            assert self.service is not None, "a job needs a service or a given (url, token)"
            url = f"http://{self.host}:{self.service.port}/"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(place),
            "ACTIONS_RUNTIME_TOKEN": self.token,
            "ACTIONS_CACHE_URL": url,
            "ACTIONS_RESULTS_URL": url,
            "GITHUB_REF": self.ref,
            "GITHUB_WORKSPACE": str(place / "work"),
            "RUNNER_TEMP": str(place / "temp"),
            "GITHUB_SERVER_URL": "https://github.com",
        }
        if self.protocol == "v2":
            env["ACTIONS_CACHE_SERVICE_V2"] = "True"
        if self.base:
            env["GITHUB_BASE_REF"] = self.base
        if self.client_mode:
            env["ACTIONS_CACHE_MODE"] = self.client_mode
        return env

    def command(self, *arguments: str) -> list[str]:
        lib = "v2" if self.protocol == "v2" else "v1"
        extra = ["--resolve-blob-host"] if self.host.endswith(".blob.core.windows.net") else []
        return [NODE or "node", str(HARNESS), *arguments, "--lib", lib, *extra]

    def run(
        self, place: Path, *arguments: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The harness with ``arguments``, in ``place``'s workspace, as a step of this job."""
        return subprocess.run(
            self.command(*arguments),
            cwd=place / "work",
            env=self.env(place),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def save(self, key: str, files: dict[str, bytes], *, stall_after: int | None = None) -> Result:
        place = self.workspace()
        write_tree(place / "work" / "data", files)
        extra = ["--stall-after", str(stall_after)] if stall_after else []
        done = self.run(place, "save", "--key", key, "--path", "data", *extra)
        return _result(done.stdout + done.stderr)

    @contextlib.contextmanager
    def saving(self, key: str, files: dict[str, bytes], **options: int) -> Iterator[Popen]:
        """A save running in the background (for races and kills); yields the process."""
        place = self.workspace()
        write_tree(place / "work" / "data", files)
        extra = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        output = (place / "output.txt").open("w")
        process = Popen(
            self.command("save", "--key", key, "--path", "data", *extra),
            cwd=place / "work",
            env=self.env(place),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        process.output_path = place / "output.txt"
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            output.close()

    def restore(self, key: str, *restore_keys: str) -> tuple[Result, dict[str, str]]:
        """What ``restoreCache`` returned, and the digests of the tree it restored."""
        place = self.workspace()
        arguments = ["restore", "--key", key, "--path", "data"]
        for restore_key in restore_keys:
            arguments += ["--restore-key", restore_key]
        done = self.run(place, *arguments)
        return _result(done.stdout + done.stderr), tree_digests(place / "work" / "data")


class Popen(subprocess.Popen[bytes]):
    output_path: Path

    def output(self) -> str:
        return self.output_path.read_text()

    def result(self) -> Result:
        return _result(self.output())


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def tree_digests(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
