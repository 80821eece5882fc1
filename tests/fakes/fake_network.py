"""A recording ``Network`` for tests: keeps interfaces, namespaces and nft elements in memory."""

from __future__ import annotations

from collections.abc import Sequence

from blacksmith_mini.vm.firecracker import naming


class FakeNetwork:
    """Implements ``network.Network``; every call is appended to ``calls``."""

    def __init__(self, *, tap_prefix: str = "bmtap") -> None:
        self.tap_prefix = tap_prefix
        self.calls: list[tuple[str, str]] = []
        self.interfaces: dict[str, naming.NetLease | None] = {}
        self.namespaces: set[str] = set()
        self.elements: set[str] = set()
        self.prepared = 0
        self.fail_add: Exception | None = None

    async def prepare(self, leases: Sequence[naming.NetLease]) -> None:
        self.calls.append(("prepare", ",".join(lease.tap for lease in leases)))
        self.prepared += 1
        self.elements = {lease.tap for lease in leases}

    async def add_vm(self, lease: naming.NetLease, *, uid: int | None, gid: int | None) -> None:
        self.calls.append(("add_vm", lease.tap))
        if self.fail_add is not None:
            raise self.fail_add
        self.interfaces[lease.tap] = lease
        if lease.netns:
            self.namespaces.add(lease.netns)
        self.elements.add(lease.tap)

    async def remove_vm(self, lease: naming.NetLease) -> None:
        self.calls.append(("remove_vm", lease.tap))
        self.elements.discard(lease.tap)
        self.interfaces.pop(lease.tap, None)
        if lease.netns:
            self.namespaces.discard(lease.netns)

    def command(self, lease: naming.NetLease, argv: list[str]) -> list[str]:
        """The VMM's command as given (nothing to enter here); noted when the real network
        would run it in the VM's namespace."""
        if lease.inside and lease.netns:
            self.calls.append(("command", lease.netns))
        return argv

    async def list_interfaces(self) -> list[str]:
        return sorted(self.interfaces)

    async def remove_interface(self, ifname: str) -> None:
        self.calls.append(("remove_interface", ifname))
        self.interfaces.pop(ifname, None)

    async def list_namespaces(self) -> list[str]:
        return sorted(self.namespaces)

    async def remove_namespace(self, name: str) -> None:
        self.calls.append(("remove_namespace", name))
        self.namespaces.discard(name)
