"""Per-VM supervisor of the local driver: ``python -m blacksmith_mini.vm.supervisor DIR -- ARGV``.

It leads the VM's process group, starts the runner with the VM's scratch directory as working
directory and its console file as output, and records how the runner exited in ``exit.json``,
so the control plane learns the outcome even if it was restarted meanwhile. Before anything
else it records itself in ``supervisor.json`` (pid and start ticks, replaced atomically): the
driver writes the same record after spawning it, but a control plane killed in between would
otherwise leave a running VM that a restart sees as dead and cannot kill. The JIT config is
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

from blacksmith_mini.vm import procs


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: supervisor DIR -- COMMAND...", file=sys.stderr)
        return 2
    vm_dir = pathlib.Path(argv[0])
    command = argv[2:]
    if not (vm_dir / "meta.json").exists():
        return 0  # released before it got here: nothing to run
    me = os.getpid()
    write_atomically(vm_dir / "supervisor.json", {"pid": me, "ticks": procs.start_ticks(me)})
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


def write_atomically(path: pathlib.Path, value: dict[str, object]) -> None:
    """Replace ``path`` with ``value`` as JSON, so no reader ever sees half of it."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value))
    temporary.replace(path)


def _record(
    vm_dir: pathlib.Path, *, code: int | None, signum: int | None, stop_signal: int | None = None
) -> None:
    write_atomically(
        vm_dir / "exit.json",
        {"code": code, "signal": signum, "stop_signal": stop_signal, "ended_at": time.time()},
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
