"""The fake guest's runner side: the unprivileged runner user, its directory, its mounts.

As in the image, the guest agent (root) starts the runner as ``$FAKE_FC_RUNNER_USER``
(default ``bmrunner``, supplementary group ``docker``), created on the test machine if
missing. The runner directory (the image's /opt/runner) holds ``run.sh`` starting a copy of
the simulated runner. In "unkind" mode (:func:`unkind_guest`) the agent's process gets a
private mount namespace where that directory appears at ``/mnt/runner`` on a fresh tmpfs
(:func:`mount_runner_dir`), since the VM's state directory is private. Stdlib only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fakefc_knobs import REPO
from fakefc_netns import libc_call

GUEST_RUNNER_DIR = "/mnt/runner"
CLONE_NEWNS = 0x00020000


def unkind_guest() -> bool:
    """Root, ``ip`` and no opt-out: the guest gets its own netns and an unprivileged runner."""
    hidden = [str(REPO), sys.executable, os.path.realpath(sys.executable)]
    return (
        os.geteuid() == 0
        and shutil.which("ip") is not None
        and os.path.isdir("/mnt")
        and not any(path.startswith("/mnt/") for path in hidden)
        and not os.environ.get("FAKE_FC_LOOPBACK_MMDS")
    )


def ensure_runner_user(name: str) -> pwd.struct_passwd:
    """The guest's runner user, as in the image: unprivileged, supplementary group ``docker``.
    Created on this (test) machine if missing; concurrent fakes may race, so re-check."""
    if subprocess.run(["getent", "group", "docker"], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "-f", "docker"], capture_output=True, check=False)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", "-G", "docker", name],
            capture_output=True,
            check=False,
        )
    return pwd.getpwnam(name)


def world_usable(path: str) -> bool:
    """Can any user execute ``path`` (every parent searchable, the file r-x for others)?"""
    real = os.path.realpath(path)
    parts = Path(real).parents
    try:
        ok = all(os.stat(parent).st_mode & 0o001 for parent in parts)
        return ok and os.stat(real).st_mode & 0o005 == 0o005
    except OSError:
        return False


def guest_python() -> str:
    """An interpreter the runner user can run (the venv's may live under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if world_usable(candidate):
            return candidate
    return sys.executable


def simulator_runner_dir(parent: str, *, user: pwd.struct_passwd | None) -> str:
    """The guest's /opt/runner: ``run.sh`` starting a copy of the simulated runner (stdlib
    only), owned by the runner user, so it needs nothing outside this directory."""
    runner_dir = tempfile.mkdtemp(prefix="fakefc-runner-", dir=parent)
    script = REPO / "src/blacksmith_mini/simulator/runner.py"
    shutil.copy(script, Path(runner_dir) / "simulated_runner.py")
    run_sh = Path(runner_dir) / "run.sh"
    run_sh.write_text(f'#!/bin/sh\nexec "{guest_python()}" - "$@" < ./simulated_runner.py\n')
    run_sh.chmod(0o755)
    if user is not None:
        for path in (runner_dir, *(str(p) for p in Path(runner_dir).iterdir())):
            os.chown(path, user.pw_uid, user.pw_gid)
    return runner_dir


def mount_runner_dir(runner_dir: str) -> None:
    """In the (single-threaded) forked guest: a private mount namespace where the runner
    directory appears at /mnt/runner on a fresh tmpfs, so the unprivileged runner reaches it
    although the VM's state directory is private (0700), as /opt/runner in a real guest.
    The namespace ends with the guest; nothing is left on the host."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ms_bind, ms_rec, ms_private = 4096, 16384, 1 << 18

    def mount(
        source: str, target: str, *, fstype: str | None = None, flags: int = 0, data: str = ""
    ) -> None:
        kind = fstype.encode() if fstype else None
        if libc.mount(source.encode(), target.encode(), kind, flags, data.encode() or None):
            raise OSError(ctypes.get_errno(), f"mount {target}")

    libc_call("unshare", CLONE_NEWNS)
    mount("none", "/", flags=ms_rec | ms_private)
    mount("tmpfs", "/mnt", fstype="tmpfs", data="mode=0755,size=1m")
    os.mkdir(GUEST_RUNNER_DIR)
    mount(runner_dir, GUEST_RUNNER_DIR, flags=ms_bind)
