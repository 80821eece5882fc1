"""Per-VM supervisor of the local driver: ``python -m blacksmith_mini.vm.supervisor DIR -- ARGV``.

It leads the VM's process group, starts the runner with the VM's scratch directory as working
directory and its console file as output, and records how the runner exited in ``exit.json``,
so the control plane learns the outcome even if it was restarted meanwhile. The JIT config is
read from ``DIR/jitconfig`` (mode 0600), deleted, and substituted for ``{jitconfig}`` in ARGV.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: supervisor DIR -- COMMAND...", file=sys.stderr)
        return 2
    vm_dir = pathlib.Path(argv[0])
    command = argv[2:]
    secret_path = vm_dir / "jitconfig"
    jitconfig = secret_path.read_text().strip() if secret_path.exists() else ""
    secret_path.unlink(missing_ok=True)
    command = [part.replace("{jitconfig}", jitconfig) for part in command]
    stop_requested = {"signal": 0}

    def remember(signum: int, _frame: object) -> None:
        stop_requested["signal"] = signum

    signal.signal(signal.SIGTERM, remember)
    signal.signal(signal.SIGINT, remember)
    work = vm_dir / "work"
    work.mkdir(exist_ok=True)
    with open(vm_dir / "console.log", "ab", buffering=0) as console:
        try:
            child = subprocess.Popen(
                command,
                cwd=work,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "RUNNER_ALLOW_RUNASROOT": "1"},
                # (the supervisor itself was started with runner_environment(): no secrets)
            )
        except OSError as exc:
            console.write(f"blacksmith: cannot start the runner: {exc}\n".encode())
            _record(vm_dir, code=127, signum=None)
            return 127
        while True:
            try:
                code = child.wait()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
    _record(
        vm_dir,
        code=code if code >= 0 else None,
        signum=-code if code < 0 else None,
        stop_signal=stop_requested["signal"] or None,
    )
    return 0


def _record(
    vm_dir: pathlib.Path, *, code: int | None, signum: int | None, stop_signal: int | None = None
) -> None:
    temporary = vm_dir / "exit.json.tmp"
    temporary.write_text(
        json.dumps(
            {"code": code, "signal": signum, "stop_signal": stop_signal, "ended_at": time.time()}
        )
    )
    temporary.replace(vm_dir / "exit.json")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
