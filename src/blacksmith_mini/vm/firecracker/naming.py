"""Pure naming and addressing: Firecracker ids, VM slots, /30 maths, tap names and MACs.

Nothing here touches the host, so the driver, the network code, the sweep and the tests all
derive the same names from the same inputs. A VM *slot* is an index into ``network_cidr`` split
in /30s: slot ``n`` owns ``base + 4n`` .. ``base + 4n + 3``, the host end (tap) is ``+1``, the
guest ``+2``; the guest MAC encodes the guest address (``06:00:AC:10:00:02`` for 172.16.0.2), as
Firecracker's own CI images expect.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Sequence

RESOURCE_ID = re.compile(r"[A-Za-z0-9_]+")  # drive_id, iface_id: Firecracker's checked_id
INSTANCE_ID = re.compile(r"[A-Za-z0-9-]{1,64}")  # --id of firecracker and of the jailer
ROOT_DRIVE_ID = "rootfs"
IFACE_ID = "eth0"
GUEST_DEVICE = "eth0"


def instance_id(*, vm_id: int, name: str) -> str:
    """The Firecracker/jailer instance id of a VM: ``bm<vm_id>x<name without - and _>``.

    Letters and digits only, so it is valid both where Firecracker allows ``[A-Za-z0-9_]``
    (API resource ids) and where the jailer allows ``[A-Za-z0-9-]`` (instance ids). The vm_id
    prefix, ended by ``x``, keeps ids unique whatever the name.
    """
    if vm_id < 0:
        raise ValueError("vm_id must not be negative")
    cleaned = re.sub(r"[^A-Za-z0-9]", "", name)
    return f"bm{vm_id}x{cleaned}"[:64]


def check_resource_id(value: str) -> str:
    """Return ``value`` if Firecracker accepts it as an API resource id, else raise ValueError."""
    if not RESOURCE_ID.fullmatch(value):
        raise ValueError(
            f"{value!r}: API Resource IDs can only contain alphanumeric characters and underscores."
        )
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetLease:
    """The network identity of one VM slot."""

    slot: int
    tap: str  # host-side interface carrying the VM's traffic (a tap, or a veth when jailed)
    host_ip: str
    guest_ip: str
    prefixlen: int
    mac: str
    netns: str | None = None  # the VM's own namespace; the tap is "tap0" in there
    inside: str | None = None  # snapshot mode: the /30 the guest sees in its namespace (NATed)

    @property
    def netmask(self) -> str:
        """Dotted netmask of the /30."""
        return str(ipaddress.IPv4Network(f"0.0.0.0/{self.prefixlen}").netmask)

    @property
    def vm_guest_ip(self) -> str:
        """The guest's own address: the slot's, or the inside /30's (the same in every clone)."""
        return _inside_ip(self.inside, 2) if self.inside else self.guest_ip

    @property
    def vm_gateway(self) -> str:
        """The guest's gateway: the slot's host end, or ``tap0``'s inside address."""
        return _inside_ip(self.inside, 1) if self.inside else self.host_ip

    @property
    def vm_tap(self) -> str:
        """The tap Firecracker opens: our host tap, or ``tap0`` inside the VM's namespace."""
        return "tap0" if self.netns else self.tap


def _inside_ip(cidr: str, offset: int) -> str:
    return str(ipaddress.IPv4Network(cidr).network_address + offset)


def tap_name(*, prefix: str, slot: int) -> str:
    """Host interface name of a slot (at most 15 characters, checked by the settings)."""
    name = f"{prefix}{slot}"
    if len(name) > 15:
        raise ValueError(f"interface name {name!r} is longer than 15 characters")
    return name


def slot_of_tap(*, prefix: str, ifname: str) -> int | None:
    """The slot encoded in one of our interface names, or None if it is not ours."""
    match = re.fullmatch(re.escape(prefix) + r"(\d+)", ifname)
    return int(match.group(1)) if match else None


def guest_mac(guest_ip: str) -> str:
    """Locally administered unicast MAC ``06:00:<guest ip bytes>``."""
    octets = ipaddress.IPv4Address(guest_ip).packed
    return ":".join(f"{b:02X}" for b in (0x06, 0x00, *octets))


def lease_for_slot(
    *,
    network_cidr: str,
    tap_prefix: str,
    slot: int,
    netns: str | None = None,
    inside: str | None = None,
) -> NetLease:
    """The /30 of ``slot`` within ``network_cidr`` (with ``inside``: the guest sees that /30
    in its namespace ``netns``, and its MAC is the inside address's)."""
    if inside is not None and netns is None:
        raise ValueError("an inside /30 needs the VM's own network namespace")
    net = ipaddress.IPv4Network(network_cidr)
    count = net.num_addresses // 4
    if not 0 <= slot < count:
        raise ValueError(f"slot {slot} is outside {network_cidr} ({count} slots)")
    base = int(net.network_address) + 4 * slot
    host_ip = str(ipaddress.IPv4Address(base + 1))
    guest_ip = str(ipaddress.IPv4Address(base + 2))
    return NetLease(
        slot=slot,
        tap=tap_name(prefix=tap_prefix, slot=slot),
        host_ip=host_ip,
        guest_ip=guest_ip,
        prefixlen=30,
        mac=guest_mac(_inside_ip(inside, 2) if inside else guest_ip),
        netns=netns,
        inside=inside,
    )


def pick_slot(*, used: Iterable[int], slot_count: int) -> int:
    """The lowest free slot; ValueError when the range is full."""
    taken = set(used)
    for slot in range(slot_count):
        if slot not in taken:
            return slot
    raise ValueError(f"all {slot_count} VM network slots are in use: widen network_cidr")


def kernel_ip_arg(*, lease: NetLease, dns_servers: Sequence[str]) -> str:
    """The kernel ``ip=`` argument: ``ip=<guest>::<gw>:<mask>::eth0:off[:dns0[:dns1]]``."""
    fields = [lease.vm_guest_ip, "", lease.vm_gateway, lease.netmask, "", GUEST_DEVICE, "off"]
    fields.extend(dns_servers[:2])
    return "ip=" + ":".join(fields)


def lease_dict(lease: NetLease) -> dict[str, object]:
    """A lease as a VM's record stores it."""
    return {
        "slot": lease.slot,
        "tap": lease.tap,
        "host_ip": lease.host_ip,
        "guest_ip": lease.guest_ip,
        "prefixlen": lease.prefixlen,
        "mac": lease.mac,
        "netns": lease.netns,
        "inside": lease.inside,
    }
