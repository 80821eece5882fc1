"""The runner patch that lets a step's cache traffic reach the host's cache (``image build``).

The runner writes ``ACTIONS_RESULTS_URL`` and ``ACTIONS_CACHE_URL`` from the job message into
the environment of every node and container action step, over anything set in the runner's own
environment (actions/runner ``src/Runner.Worker/Handlers/NodeScriptActionHandler.cs`` and
``ContainerActionHandler.cs``; upstream refuses an override: #3411, #3906). Of the known ways
around it (a forked runner, TLS interception, NGINX in the VM), the least fragile is a
same-length rename of those two names in ``bin/Runner.Worker.dll``: the runner then writes
GitHub's values to ``ACTIONS_RESULTS_ORL`` / ``ACTIONS_CACHE_ORL``, and the values the guest
agent gives the runner (the in-VM cache proxy, ``images/guest/blacksmith-cache-proxy.py``)
reach the step. Nothing else in the runner changes; a runner that cannot be patched exactly
is refused, loudly, at image build, never shipped half-patched.

What is patched: each name is a string literal of the two handlers, which the compiler keeps
once in the assembly's user-string heap (``#US``) as a length-prefixed UTF-16LE blob: byte
``2n+1``, the ``n`` characters, a final 0 byte. The patch finds that exact blob, requires it
exactly once per name, and replaces the characters in place (same length: no offset moves).
Checked against actions/runner's source of every release from v2.308.0 to v2.336.0 (both
handlers set both names, and no other runner source names them); v2.300.0 to v2.307.x set
no ``ACTIONS_RESULTS_URL`` and are refused. Container actions get ``ACTIONS_RESULTS_ORL`` and
no URL of ours (their cache calls then miss, they never fail); ``run:`` steps get neither,
as on GitHub's runners.

``python -m blacksmith_mini.vm.firecracker.runner_patch DLL`` patches a file in place
(atomically); exit 1 with what was found when it cannot.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

RENAMES = {"ACTIONS_RESULTS_URL": "ACTIONS_RESULTS_ORL", "ACTIONS_CACHE_URL": "ACTIONS_CACHE_ORL"}
FIRST_VERSION = "2.308.0"
WORKER_DLL = "bin/Runner.Worker.dll"


class PatchError(Exception):
    """The runner is not one the patch fits; the message says what was found."""


def user_string(text: str) -> bytes:
    """``text`` as the ``#US`` heap stores it (ASCII only, under 64 characters)."""
    if not text.isascii() or len(text) >= 64:
        raise ValueError(f"not a short ASCII literal: {text!r}")
    return bytes([2 * len(text) + 1]) + text.encode("utf-16-le") + b"\x00"


def patch(data: bytes) -> bytes:
    """``data`` with each of ``RENAMES`` renamed in its one ``#US`` entry."""
    found = bytearray(data)
    for name, renamed in RENAMES.items():
        old, new = user_string(name), user_string(renamed)
        count = data.count(old)
        if count == 0 and data.count(new) == 1:
            continue  # patched already: the same tree patched twice
        if count != 1:
            raise PatchError(
                f"{name} appears {count} times as a string literal of Runner.Worker.dll "
                f"(the patch needs exactly 1): this runner is not one the cache redirect "
                f"fits (checked: v{FIRST_VERSION} and later); build with another "
                f"--runner-version, or report it"
            )
        at = data.index(old)
        found[at : at + len(new)] = new
    return bytes(found)


def patch_file(path: Path) -> None:
    """Patch ``path`` in place: a patched copy renamed over it, or nothing changed at all."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PatchError(f"cannot read {path} ({exc.strerror}): is this a runner tarball?") from exc
    patched = patch(data)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(patched)
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        sys.stderr.write("usage: python -m blacksmith_mini.vm.firecracker.runner_patch DLL\n")
        return 2
    try:
        patch_file(Path(arguments[0]))
    except PatchError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(
        f"patched {arguments[0]}: " + ", ".join(f"{a} -> {b}" for a, b in RENAMES.items()) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
