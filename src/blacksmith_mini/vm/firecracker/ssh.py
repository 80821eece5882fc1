"""``blacksmith-mini ssh VM_ID``: the ssh command line that reaches a (kept) VM's guest.

The guest agent installs the public key from ``ssh_public_key_path`` (or the VmSpec's) for the
user ``runner``; the host reaches the guest address directly over the VM's tap (host-originated
traffic is not filtered by our nft rules, and replies are ``established``).
"""

from __future__ import annotations

from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

GUEST_USER = "runner"


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
