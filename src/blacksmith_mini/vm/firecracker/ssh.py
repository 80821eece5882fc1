"""``blacksmith-mini ssh VM_ID``: the ssh command line that reaches a (kept) VM's guest.

The guest agent installs the public key from ``ssh_public_key_path`` (or the VmSpec's) for the
user ``runner``; the host reaches the guest address directly over the VM's tap (host-originated
traffic is not filtered by our nft rules, and replies are ``established``). Only a VM that still
runs can be reached: a running one, or one kept after a failed job (``keep_on_failure_minutes``);
:func:`guest_address` refuses the others with a message that says why.
"""

from __future__ import annotations

import time

from blacksmith_mini.vm.firecracker import state
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

GUEST_USER = "runner"


class NotReachable(Exception):
    """The VM cannot be reached over ssh; the text says why and what to do."""


def guest_address(record: state.VmRecord, *, alive: bool, now: float | None = None) -> str:
    """The guest address of ``record``'s VM if it still runs (kept or not); else NotReachable."""
    if alive:
        return record.net.guest_ip
    now = time.time() if now is None else now
    exited = state.read_exit(record.dir) or {}
    how = ""
    if exited.get("exit_code") is not None:
        how = f" with exit code {exited['exit_code']}"
    elif exited.get("exit_signal") is not None or record.kill_sent_at is not None:
        how = " (killed)"
    kept = ""
    if record.keep_until is not None:
        kept = f"; it was kept until {time.ctime(record.keep_until)}"
        if now < record.keep_until:
            kept += " but exited early"
    raise NotReachable(
        f"VM {record.vm_id} ({record.name}) is not running any more: it exited{how}{kept}. "
        "Only running VMs and VMs kept after a failed job can be reached; to keep those, set "
        "[vm.firecracker] keep_on_failure_minutes"
    )


def ssh_argv(*, settings: FirecrackerSettings, guest_ip: str, user: str = GUEST_USER) -> list[str]:
    """The argument list for ``ssh`` into ``guest_ip`` (exec it; no shell involved)."""
    argv = [
        "ssh",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=5",
    ]
    if settings.ssh_private_key_path is not None:
        argv += ["-i", str(settings.ssh_private_key_path), "-o", "IdentitiesOnly=yes"]
    return [*argv, f"{user}@{guest_ip}"]
