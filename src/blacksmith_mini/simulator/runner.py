"""A simulated GitHub Actions runner: ``python -m blacksmith_mini.simulator.runner --jitconfig X``.

It behaves like ``run.sh --jitconfig``: it unpacks the JIT config (base64 JSON of the runner's
``.runner`` / ``.credentials`` / ``.credentials_rsaparams`` files) into its working directory,
connects to the service named in ``.runner`` (the simulator's broker), prints the real runner's
console lines, takes one job, "runs" it for its duration, reports the conclusion and exits.
Standard library only, so it starts fast and can run inside a guest image too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import pathlib
import signal
import sys
import time
import urllib.error
import urllib.request
from typing import Any

GIVE_UP_SECONDS = 300.0  # an idle runner whose service stays unreachable this long exits
RESULTS = {"success": "Succeeded", "failure": "Failed", "cancelled": "Canceled"}
VERSION = "2.330.0"


def say(line: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    print(f"{stamp}: {line}", flush=True)


class Session:
    def __init__(self, server: str, runner_id: str, secret: str) -> None:
        self.server = server.rstrip("/")
        self.headers = {"x-runner-id": runner_id, "x-runner-secret": secret}

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 40.0
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - http(s) URL from the JIT config
            f"{self.server}{path}",
            data=data,
            method=method,
            headers={**self.headers, "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, None


def unpack(encoded: str, root: pathlib.Path) -> dict[str, Any]:
    """Write the runner files the JIT config carries, as ``run.sh --jitconfig`` does."""
    files = json.loads(base64.b64decode(encoded))
    decoded = {}
    for name in (".runner", ".credentials", ".credentials_rsaparams"):
        content = base64.b64decode(files[name])
        path = root / name
        path.write_bytes(content)
        path.chmod(0o600)
        decoded[name] = json.loads(content)
    return decoded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jitconfig", required=True)
    parser.add_argument("--connect-retries", type=int, default=20)
    args = parser.parse_args(argv)
    stopping = {"flag": False}

    def on_term(_signum: int, _frame: object) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        files = unpack(args.jitconfig, pathlib.Path.cwd())
    except (ValueError, KeyError) as exc:
        print(f"An error occurred: the JIT config is not valid ({exc})", flush=True)
        return 1
    runner = files[".runner"]
    session = Session(runner["serverUrl"], runner["agentId"], files[".credentials_rsaparams"]["d"])
    for attempt in range(args.connect_retries):
        try:
            status, _ = session.call("POST", "/connect", {}, timeout=5)
        except OSError:
            status = 0
        if status == 200:
            break
        time.sleep(min(2.0, 0.2 * (attempt + 1)))
    else:
        print("Failed to connect to the server: giving up", flush=True)
        return 1
    print("\u221a Connected to GitHub\n", flush=True)
    print(f"Current runner version: '{VERSION}'", flush=True)
    say("Listening for Jobs")
    job = None
    unreachable_since: float | None = None
    while not stopping["flag"]:
        try:
            status, job = session.call("GET", "/next?wait=2", timeout=10)
        except OSError:
            # The control plane (which serves the simulated GitHub) is down: a restart adopts
            # us within minutes; if it never comes back, give up rather than linger forever.
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > GIVE_UP_SECONDS:
                print("Runner listener exited: the service stayed unreachable", flush=True)
                return 1
            time.sleep(0.5)
            continue
        unreachable_since = None
        if status == 200 and job:
            break
        if status == 401:
            print("Runner registration has been deleted from the server", flush=True)
            return 1
    if job is None:
        session.call("POST", "/disconnect", {}, timeout=5)
        say("Runner listener exit because of shutdown signal")
        return 0
    say(f"Running job: {job['name']}")
    finish_at = time.monotonic() + float(job["duration"])
    while time.monotonic() < finish_at:
        time.sleep(min(0.25, max(0.0, finish_at - time.monotonic())))
        # heartbeat; when the service is briefly unreachable the real runner retries too
        with contextlib.suppress(OSError):
            session.call("GET", "/next?wait=0", timeout=10)
    conclusion = job["conclusion"]
    for _attempt in range(30):
        try:
            status, _ = session.call(
                "POST", f"/jobs/{job['job_id']}/complete", {"conclusion": conclusion}
            )
        except OSError:
            time.sleep(1.0)
            continue
        if status in (200, 404):
            break
        time.sleep(1.0)
    say(f"Job {job['name']} completed with result: {RESULTS.get(conclusion, 'Failed')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
