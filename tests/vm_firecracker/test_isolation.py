"""What a VM can reach, with the real ``HostNetwork`` rules, in namespaces the test creates.

Layout (every box is a network namespace of this test):

    guest1 --veth-- [ host ] --veth-- guest2
                       |
                    "uplink" veth
                       |
                    outside: 10.99.0.2 (in egress_allow), 10.98.0.2 (private, not allowed),
                             198.51.100.2 (stands for the internet)

Each "guest" is a namespace whose ``eth0`` holds the VM's guest address from the /30 plan, with
the host end named like the VM's tap (``<tap_prefix><slot>``): ``HostNetwork.add_vm`` finds that
interface already there, gives it the host address and adds the VM's nftables element, exactly
as for a tap. Reachability is tested with TCP connects from threads inside the namespaces to
listening sockets (the kernel completes the handshake; nobody needs to accept).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from blacksmith_mini.vm.firecracker import naming, network
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from vm_firecracker.netboxes import PORT, Box, four_boxes

pytestmark = [pytest.mark.netns, pytest.mark.anyio]

API_PORT = 8123
ALLOWED, PRIVATE, PUBLIC = "10.99.0.2", "10.98.0.2", "198.51.100.2"
SETTINGS = FirecrackerSettings(
    tap_prefix="fcnet", egress_allow=("10.99.0.0/24",), host_api_port=API_PORT
)


@pytest.fixture
def boxes() -> Iterator[dict[str, Box]]:
    with four_boxes("bmiso", what="isolation tests") as made:
        yield made


@pytest.fixture
async def wired(
    boxes: dict[str, Box],
) -> AsyncIterator[tuple[network.HostNetwork, list[naming.NetLease]]]:
    host, outside = boxes["host"], boxes["outside"]
    # Reverse-path filtering off, so that only our nftables rules can stop a spoofed source.
    for key in ("all", "default"):
        host.ns.run("sysctl", "-q", "-w", f"net.ipv4.conf.{key}.rp_filter=0")
    net = network.HostNetwork(settings=SETTINGS, netns_name=host.ns.name)
    await net.prepare([])
    leases = []
    for slot, guest in ((1, boxes["guest1"]), (2, boxes["guest2"])):
        lease = naming.lease_for_slot(
            network_cidr=SETTINGS.network_cidr, tap_prefix=SETTINGS.tap_prefix, slot=slot
        )
        host.ip(
            "link", "add", lease.tap, "type", "veth", "peer", "name", "eth0", "netns", guest.ns.name
        )
        guest.ip("addr", "add", f"{lease.guest_ip}/30", "dev", "eth0")
        guest.ip("link", "set", "eth0", "up")
        guest.ip("route", "add", "default", "via", lease.host_ip)
        await net.add_vm(lease, uid=None, gid=None)
        guest.listen(PORT)
        leases.append(lease)
    host.ip(
        "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", outside.ns.name
    )
    for address in (ALLOWED, PRIVATE, PUBLIC):
        gateway = address.rsplit(".", 1)[0] + ".1"
        host.ip("addr", "add", f"{gateway}/24", "dev", "uplink")
        outside.ip("addr", "add", f"{address}/24", "dev", "eth0")
    host.ip("link", "set", "uplink", "up")
    outside.ip("link", "set", "eth0", "up")
    outside.listen(PORT)
    host.listen(PORT)
    host.listen(API_PORT)
    yield net, leases
    for lease in leases:
        with contextlib.suppress(network.NetworkError):
            await net.remove_vm(lease)


async def test_vms_reach_the_internet_and_allowed_ranges_only(
    boxes: dict[str, Box], wired: tuple[network.HostNetwork, list[naming.NetLease]]
) -> None:
    guest1 = boxes["guest1"]
    assert guest1.connects(PUBLIC), "a VM must reach public addresses (through NAT)"
    assert guest1.connects(ALLOWED), "a VM must reach egress_allow"
    assert not guest1.connects(PRIVATE), "a VM must not reach private ranges"
    assert boxes["outside"].connects(PUBLIC), "control: the outside listener works"


async def test_a_vm_cannot_reach_another_vm(
    boxes: dict[str, Box], wired: tuple[network.HostNetwork, list[naming.NetLease]]
) -> None:
    _, (lease1, lease2) = wired
    guest1, guest2, host = boxes["guest1"], boxes["guest2"], boxes["host"]
    # Control: both guests listen, and the host (e.g. `blacksmith-mini ssh`) reaches them.
    assert host.connects(lease1.guest_ip) and host.connects(lease2.guest_ip)
    assert guest1.connects(PUBLIC) and guest2.connects(PUBLIC)
    assert not guest1.connects(lease2.guest_ip), "VM 1 reached VM 2's guest address"
    assert not guest2.connects(lease1.guest_ip), "VM 2 reached VM 1's guest address"
    assert not guest1.connects(lease2.host_ip), "VM 1 reached VM 2's tap address"


async def test_a_vm_cannot_reach_the_host_or_the_control_plane(
    boxes: dict[str, Box], wired: tuple[network.HostNetwork, list[naming.NetLease]]
) -> None:
    _, (lease1, _) = wired
    host, guest1 = boxes["host"], boxes["guest1"]
    assert host.connects(lease1.host_ip, API_PORT) and host.connects(lease1.host_ip)  # control
    assert not guest1.connects(lease1.host_ip, API_PORT), "VM reached the control plane's port"
    assert not guest1.connects(lease1.host_ip), "VM reached a host service"


async def test_a_vm_cannot_spoof_its_source_address(
    boxes: dict[str, Box], wired: tuple[network.HostNetwork, list[naming.NetLease]]
) -> None:
    _, (lease1, lease2) = wired
    guest1 = boxes["guest1"]
    guest1.ip("addr", "add", f"{lease2.guest_ip}/32", "dev", "eth0")  # VM 2's address
    assert guest1.connects(PUBLIC, source=lease1.guest_ip)  # control: its own address works
    assert not guest1.connects(PUBLIC, source=lease2.guest_ip), "a spoofed source got through"


async def test_removing_a_vm_removes_its_interface_and_element(
    boxes: dict[str, Box], wired: tuple[network.HostNetwork, list[naming.NetLease]]
) -> None:
    net, (lease1, lease2) = wired
    host = boxes["host"]
    elements = host.ns.nft_elements(SETTINGS.nft_table)
    assert f'"{lease1.tap}" . {lease1.guest_ip}' in elements
    await net.remove_vm(lease1)
    assert await net.list_interfaces() == [lease2.tap]
    assert host.ns.nft_elements(SETTINGS.nft_table) == [f'"{lease2.tap}" . {lease2.guest_ip}']
    assert not boxes["guest2"].connects(lease1.guest_ip)
