"""Per-VM supervisor process: runs Firecracker (or the jailer), keeps its console, records its exit.

``python -m blacksmith_mini.vm.firecracker.supervisor --state-dir D --max-bytes N -- CMD...``

The driver starts one per VM as the leader of a new session/process group; Firecracker is its
child in the same group, so one ``killpg`` ends both. Because this process, not the control
plane, owns Firecracker's stdout (the guest's serial console), a control-plane restart loses
nothing: the console keeps flowing into ``console.log`` (bounded to ``--max-bytes``, keeping the
tail), every marker (see ``markers.py``) is appended once to ``events.jsonl``, and the exit
status lands in ``exit.json``. The driver only reads these files. Stdlib only, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from blacksmith_mini.vm.firecracker import markers

CONSOLE = "console.log"
EVENTS = "events.jsonl"
EXIT = "exit.json"
CHILD_PID = "child.pid"
MAX_LINE = 16384


class BoundedLog:
    """Append-only file that, past ``max_bytes``, keeps only its newest half."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._file = path.open("ab")
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        """Append ``data``, trimming the file when it grows past its bound."""
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        if self._size > self.max_bytes:
            self._trim()

    def _trim(self) -> None:
        keep = self.max_bytes // 2
        self._file.close()
        with self.path.open("rb") as old:
            old.seek(max(0, self._size - keep))
            tail = old.read()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(b"[... console trimmed ...]\n" + tail)
        os.replace(tmp, self.path)
        self._file = self.path.open("ab")
        self._size = self._file.tell()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class MarkerScanner:
    """Splits the console stream into lines and records each marker event once."""

    def __init__(self, events_path: Path) -> None:
        self._path = events_path
        self._partial = b""
        self._seen: set[str] = set()
        if events_path.exists():
            for line in events_path.read_text().splitlines():
                self._seen.add(json.loads(line)["event"])

    def feed(self, data: bytes) -> None:
        """Scan complete lines of ``data``; keep the unfinished last line for later."""
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[-MAX_LINE:]
        for raw in lines:
            self._line(raw)

    def flush(self) -> None:
        """Scan what is left once the stream ended."""
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    def _line(self, raw: bytes) -> None:
        found = markers.scan(raw.decode("utf-8", errors="replace").rstrip("\r"))
        if found is None or found[0] in self._seen:
            return
        event, detail = found
        self._seen.add(event)
        record = {"event": event, "detail": detail, "time": time.time()}
        with self._path.open("a") as out:
            out.write(json.dumps(record) + "\n")


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as JSON through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def run(*, state_dir: Path, max_bytes: int, command: list[str]) -> int:
    """Run ``command`` to its end, pumping its output; return its exit code."""
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=write_fd, stderr=write_fd, close_fds=True
    )
    os.close(write_fd)
    (state_dir / CHILD_PID).write_text(str(child.pid))
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    log = BoundedLog(state_dir / CONSOLE, max_bytes)
    scanner = MarkerScanner(state_dir / EVENTS)
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        log.write(chunk)
        scanner.feed(chunk)
    scanner.flush()
    log.close()
    code = child.wait()
    write_json_atomic(
        state_dir / EXIT,
        {
            "exit_code": code if code >= 0 else None,
            "exit_signal": -code if code < 0 else None,
            "time": time.time(),
        },
    )
    return code


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--max-bytes", required=True, type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command is required after --")
    code = run(state_dir=args.state_dir, max_bytes=args.max_bytes, command=command)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
