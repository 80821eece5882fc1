"""Host networking of VMs behind a small ``Network`` Protocol; ``HostNetwork`` is the real one.

Per VM: a tap named ``<tap_prefix><slot>`` carrying the host end of the VM's /30 (created with
pyroute2, owned by the jail uid when jailed), plus one nftables set element (see
``nftables.py``). When the VM has its own network namespace (jailer mode), the tap ``tap0`` lives
in that namespace and a veth pair joins it to the host: the host end gets our name and address,
and two tc ``mirred`` redirects splice veth and tap together at layer 2, so the host-side rules
are identical in both modes. With snapshots (``lease.inside``) the namespace routes instead:
every VM's guest has the same inside address (a clone keeps its template's), ``tap0`` holds the
inside gateway, the namespace's ``veth0`` the slot's guest address, and a NAT table there maps
the one to the other (``nftables.clone_nat``), so the host sees each VM at its slot's address
as before; Firecracker runs in the namespace (``command``). Everything runs as argument lists,
never through a shell; ``netns`` on ``HostNetwork`` itself lets tests run all of this inside a
namespace they create.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio
from pyroute2 import IPRoute, netns

from blacksmith_mini.vm.firecracker import naming, nftables
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

NETNS_DIR = Path("/var/run/netns")
ETH_P_ALL = 0x0003


class NetworkError(Exception):
    """A host networking step failed; the text names the step and the tool's message."""


class Network(Protocol):
    """What the driver needs from host networking. Every method is idempotent."""

    async def prepare(self, leases: Sequence[naming.NetLease]) -> None:
        """Install our nftables table (keeping the given live VMs) and IPv4 forwarding."""

    async def add_vm(self, lease: naming.NetLease, *, uid: int | None, gid: int | None) -> None:
        """Create the tap (and namespace + veth if ``lease.netns``); let its traffic through."""

    async def remove_vm(self, lease: naming.NetLease) -> None:
        """Undo ``add_vm``: nftables element first, then interfaces and namespace."""

    def command(self, lease: naming.NetLease, argv: list[str]) -> list[str]:
        """``argv`` made to run in the VM's own namespace when the VM's network lives there
        (snapshot mode; the jailer enters its namespace itself)."""

    async def list_interfaces(self) -> list[str]:
        """Host interfaces whose name starts with our prefix."""

    async def remove_interface(self, ifname: str) -> None:
        """Delete one host interface (no-op if absent)."""

    async def list_namespaces(self) -> list[str]:
        """Network namespaces named with our prefix."""

    async def remove_namespace(self, name: str) -> None:
        """Delete one network namespace (no-op if absent)."""


@runtime_checkable
class Checkable(Protocol):
    """A ``Network`` that can say, cheaply and without changing anything, whether it is ready."""

    async def check(self) -> None:
        """Raise NetworkError (naming the fix) unless VMs can be wired up now."""


def namespace_name(*, tap_prefix: str, instance_id: str) -> str:
    """Name of a jailed VM's own network namespace."""
    return f"{tap_prefix}_{instance_id}"


def routed(settings: FirecrackerSettings) -> bool:
    """Whether VMs get the routed namespace of snapshot mode (snapshots, not the jailer)."""
    return settings.snapshots and not settings.jailer_bin


def lease_for(settings: FirecrackerSettings, *, slot: int, instance_id: str) -> naming.NetLease:
    """A VM's lease on ``slot``: in its own namespace (named by the VM) when jailed with
    ``netns``; routed from an inside /30 in its own namespace (named by the slot, so it can be
    wired before the VM is known: ``spares``) with snapshots, every VM as a clone would be, so
    a failed restore boots cold on the same network."""
    inside = routed(settings)
    jailed = bool(settings.jailer_bin and settings.jailer.netns)
    named = f"s{slot}" if inside else instance_id
    return naming.lease_for_slot(
        network_cidr=settings.network_cidr,
        tap_prefix=settings.tap_prefix,
        slot=slot,
        netns=namespace_name(tap_prefix=settings.tap_prefix, instance_id=named)
        if inside or jailed
        else None,
        inside=settings.clone_network_cidr if inside else None,
    )


class HostNetwork:
    """The real implementation: pyroute2 for links and addresses, ``nft -f -`` for rules."""

    def __init__(self, *, settings: FirecrackerSettings, netns_name: str | None = None) -> None:
        self._settings = settings
        self._netns = netns_name  # run everything in this namespace instead of the host's

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self._netns] if self._netns else []

    async def _nft(self, script: str, *, ok_if_missing: bool = False) -> None:
        argv = [*self._prefix(), "nft", "-f", "-"]
        try:
            result = await anyio.run_process(argv, input=script.encode(), check=False)
        except FileNotFoundError as exc:
            raise NetworkError("nft not found: install nftables") from exc
        if result.returncode != 0:
            err = result.stderr.decode(errors="replace").strip()
            if ok_if_missing and "No such file or directory" in err:
                return
            raise NetworkError(f"nft -f - failed: {err[:800]}")

    async def prepare(self, leases: Sequence[naming.NetLease]) -> None:
        s = self._settings
        await self._nft(
            nftables.ruleset(
                table=s.nft_table,
                tap_prefix=s.tap_prefix,
                network_cidr=s.network_cidr,
                egress_allow=s.egress_allow,
                host_api_port=s.host_api_port,
                host_cache_port=s.host_cache_port,
                leases=leases,
            )
        )
        result = await anyio.run_process(
            [*self._prefix(), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], check=False
        )
        if result.returncode != 0:
            raise NetworkError(
                f"enabling net.ipv4.ip_forward failed: {result.stderr.decode()[:300]}"
            )

    async def check(self) -> None:
        """Taps can be created, our nft table is installed and IPv4 forwarding is on."""
        if not can_create_tap():
            raise NetworkError(
                "cannot create taps (/dev/net/tun is missing or not accessible); fix: run as "
                "root (or with CAP_NET_ADMIN) and `modprobe tun`"
            )
        if self._settings.snapshots and shutil.which("ip") is None:
            raise NetworkError(
                "snapshots run each VM in its own network namespace with `ip netns exec`, and "
                "`ip` is missing; fix: apt-get install iproute2"
            )
        table = self._settings.nft_table
        try:
            listed = await anyio.run_process(
                [*self._prefix(), "nft", "list", "table", "inet", table], check=False
            )
        except FileNotFoundError as exc:
            raise NetworkError("nft not found; fix: apt-get install nftables") from exc
        if listed.returncode != 0:
            raise NetworkError(
                f"nftables table inet {table} is missing (it is installed when the driver "
                "opens; did another tool flush the ruleset?); fix: restart blacksmith-mini, "
                "which installs it again"
            )
        forward = await anyio.run_process(
            [*self._prefix(), "sysctl", "-n", "net.ipv4.ip_forward"], check=False
        )
        if forward.stdout.decode().strip() != "1":
            raise NetworkError(
                "net.ipv4.ip_forward is off, so VMs cannot reach the internet; fix: restart "
                "blacksmith-mini (it turns it on) or `sysctl -w net.ipv4.ip_forward=1`"
            )

    async def add_vm(self, lease: naming.NetLease, *, uid: int | None, gid: int | None) -> None:
        try:
            await anyio.to_thread.run_sync(self._add_links, lease, uid, gid)
        except NetworkError:
            raise
        except Exception as exc:
            raise NetworkError(f"creating {lease.tap} failed: {exc!r}") from exc
        if lease.inside and lease.netns:
            await self._in_namespace(
                lease.netns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], step="forwarding"
            )
            script = nftables.clone_nat(lease).encode()
            await self._in_namespace(lease.netns, ["nft", "-f", "-"], step="NAT", stdin=script)
        await self._nft(nftables.add_vm(table=self._settings.nft_table, lease=lease))

    def command(self, lease: naming.NetLease, argv: list[str]) -> list[str]:
        return _netns_exec(lease.netns, argv) if lease.inside and lease.netns else argv

    async def _in_namespace(
        self, name: str, argv: list[str], *, step: str, stdin: bytes | None = None
    ) -> None:
        try:
            done = await anyio.run_process(_netns_exec(name, argv), input=stdin, check=False)
        except FileNotFoundError as exc:
            raise NetworkError(f"{exc.filename} not found: install iproute2 and nftables") from exc
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip()[:600]
            raise NetworkError(f"{step} in network namespace {name} failed: {said}")

    async def remove_vm(self, lease: naming.NetLease) -> None:
        await self._nft(
            nftables.remove_vm(table=self._settings.nft_table, lease=lease), ok_if_missing=True
        )
        await self.remove_interface(lease.tap)
        if lease.netns:
            await self.remove_namespace(lease.netns)

    async def list_interfaces(self) -> list[str]:
        def names() -> list[str]:
            with self._ipr() as ipr:
                found = [str(link.get("ifname")) for link in ipr.get_links()]
            return [
                n
                for n in found
                if naming.slot_of_tap(prefix=self._settings.tap_prefix, ifname=n) is not None
            ]

        return await anyio.to_thread.run_sync(names)

    async def remove_interface(self, ifname: str) -> None:
        def remove() -> None:
            with self._ipr() as ipr:
                for index in ipr.link_lookup(ifname=ifname):
                    ipr.link("del", index=index)

        await anyio.to_thread.run_sync(remove)

    async def list_namespaces(self) -> list[str]:
        prefix = f"{self._settings.tap_prefix}_"
        return sorted(name for name in netns.listnetns() if name.startswith(prefix))

    async def remove_namespace(self, name: str) -> None:
        if name in netns.listnetns():
            await anyio.to_thread.run_sync(netns.remove, name)

    def _ipr(self, *, namespace: str | None = None) -> Any:
        target = namespace or self._netns
        return IPRoute(netns=target) if target else IPRoute()

    def _add_links(self, lease: naming.NetLease, uid: int | None, gid: int | None) -> None:
        owner: dict[str, int] = {}
        if uid is not None:
            owner["uid"] = uid
        if gid is not None:
            owner["gid"] = gid
        if lease.netns is None:
            with self._ipr() as ipr:
                if not ipr.link_lookup(ifname=lease.tap):
                    ipr.link("add", ifname=lease.tap, kind="tuntap", mode="tap", **owner)
                _address_up(ipr, lease.tap, address=lease.host_ip, prefixlen=lease.prefixlen)
            return
        self._add_namespaced_links(lease, owner)

    def _add_namespaced_links(self, lease: naming.NetLease, owner: dict[str, int]) -> None:
        assert lease.netns is not None
        if lease.netns not in netns.listnetns():
            netns.create(lease.netns)
        with self._ipr(namespace=lease.netns) as inner:
            if not inner.link_lookup(ifname="tap0"):
                inner.link("add", ifname="tap0", kind="tuntap", mode="tap", **owner)
        with self._ipr() as ipr:
            if not ipr.link_lookup(ifname=lease.tap):
                ipr.link(
                    "add",
                    ifname=lease.tap,
                    kind="veth",
                    peer={"ifname": "veth0", "net_ns_fd": str(NETNS_DIR / lease.netns)},
                )
            _address_up(ipr, lease.tap, address=lease.host_ip, prefixlen=lease.prefixlen)
        with self._ipr(namespace=lease.netns) as inner:
            tap = inner.link_lookup(ifname="tap0")[0]
            veth = inner.link_lookup(ifname="veth0")[0]
            if lease.inside:  # routed: the inside gateway on tap0, the slot's guest on veth0
                _address_up(inner, "tap0", address=lease.vm_gateway, prefixlen=lease.prefixlen)
                _address_up(inner, "veth0", address=lease.guest_ip, prefixlen=lease.prefixlen)
                inner.link("set", index=inner.link_lookup(ifname="lo")[0], state="up")
                inner.route("replace", dst="0.0.0.0/0", gateway=lease.host_ip)
                return
            for index in (tap, veth):
                inner.link("set", index=index, state="up")
            for src, dst in ((veth, tap), (tap, veth)):
                _redirect(inner, src=src, dst=dst)


def _netns_exec(name: str, argv: list[str]) -> list[str]:
    """``argv`` run in network namespace ``name``."""
    return ["ip", "netns", "exec", name, *argv]


def _address_up(ipr: Any, ifname: str, *, address: str, prefixlen: int) -> None:
    index = ipr.link_lookup(ifname=ifname)[0]
    have = {(a.get("address"), a.get("prefixlen")) for a in ipr.get_addr(index=index)}
    if (address, prefixlen) not in have:
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    ipr.link("set", index=index, state="up")


def _redirect(ipr: Any, *, src: int, dst: int) -> None:
    """tc: everything arriving on ``src`` leaves through ``dst`` (tc-redirect-tap's splice).

    A match-all u32 filter (``matchall`` is missing from many guest-tuned host kernels).
    """
    if list(ipr.get_filters(index=src, parent=0xFFFF0000)):
        return
    try:
        ipr.tc("add", "ingress", index=src)
    except Exception as exc:  # already there: EEXIST
        if getattr(exc, "code", None) != 17:
            raise
    ipr.tc(
        "add-filter",
        "u32",
        index=src,
        parent=0xFFFF0000,
        protocol=ETH_P_ALL,
        keys=["0x0/0x0+0"],
        target=0x10000,
        action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": dst},
    )


def ip_forward_enabled() -> bool:
    """Whether the host forwards IPv4 (read by the doctor)."""
    try:
        return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    except OSError:
        return False


def can_create_tap() -> bool:
    """Whether this process may create taps (root or CAP_NET_ADMIN and /dev/net/tun)."""
    return os.path.exists("/dev/net/tun") and os.access("/dev/net/tun", os.R_OK | os.W_OK)
