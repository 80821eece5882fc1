"""Starting Firecracker under our supervisor: the one way a VMM process is made, for VMs and
template VMs alike (``driver``, ``templates``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from blacksmith_mini.vm import environment
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings


def spawn(
    settings: FirecrackerSettings,
    *,
    state_dir: Path,
    socket: str,
    instance_id: str,
    command: list[str] | None = None,
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> subprocess.Popen[bytes]:
    """Firecracker (or the jailer's ``command``) under our supervisor, in a new process group
    with ``state_dir`` as its working directory (where its console and relative paths go);
    ``wrap`` makes the VMM's command run where its network is (``Network.command``)."""
    vmm = command or [str(settings.firecracker_bin), "--api-sock", socket, "--id", instance_id]
    vmm = wrap(vmm) if wrap else vmm
    argv = [
        sys.executable,
        "-m",
        "blacksmith_mini.vm.firecracker.supervisor",
        "--state-dir",
        str(state_dir),
        "--max-bytes",
        str(settings.console_max_bytes),
        "--",
        *vmm,
    ]
    with (state_dir / "supervisor.log").open("ab") as errors:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=errors,
            stderr=errors,
            cwd=state_dir,
            env=environment.host_environment(),
            start_new_session=True,
            close_fds=True,
        )
