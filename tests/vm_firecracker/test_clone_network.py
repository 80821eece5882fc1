"""Snapshot mode's network, with the real ``HostNetwork`` in namespaces the test creates: every
VM's guest has the one inside address (a clone keeps its template's), each VM's own namespace
translates it to the VM's slot, so two clones with the same address and MAC run side by side
and the host sees, reaches and filters each at its own slot's address.

    guest1 --"tap0"-- [clone ns 1] --veth-- [ host ] --veth-- [clone ns 2] --"tap0"-- guest2
                                               |
                                            outside (stands for the internet)

A guest here is a namespace behind a veth named ``tap0`` in the VM's namespace, standing for
Firecracker's tap; ``add_vm`` finds it there and wires the rest exactly as for a tap.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from blacksmith_mini.vm.firecracker import naming, network
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from vm_firecracker.netboxes import Box, four_boxes

pytestmark = [pytest.mark.netns, pytest.mark.anyio]

CACHE_PORT, API_PORT = 8010, 8123
PUBLIC = "198.51.100.2"
SETTINGS = FirecrackerSettings(
    tap_prefix="fccl", snapshots=True, host_api_port=API_PORT, host_cache_port=CACHE_PORT
)
GUEST_PORTS = {1: 8081, 2: 8082}


@pytest.fixture
def boxes() -> Iterator[dict[str, Box]]:
    with four_boxes("bmcl", what="clone network tests") as made:
        yield made


@pytest.fixture
async def clones(
    boxes: dict[str, Box],
) -> AsyncIterator[tuple[network.HostNetwork, dict[int, naming.NetLease]]]:
    host, outside = boxes["host"], boxes["outside"]
    net = network.HostNetwork(settings=SETTINGS, netns_name=host.ns.name)
    await net.prepare([])
    leases: dict[int, naming.NetLease] = {}
    try:
        for slot in (1, 2):
            lease = network.lease_for(SETTINGS, slot=slot, instance_id=f"t{uuid.uuid4().hex[:8]}")
            leases[slot] = lease
            guest = boxes[f"guest{slot}"]
            assert lease.netns is not None
            subprocess.run(["ip", "netns", "add", lease.netns], check=True)
            _ip(lease.netns, "link", "add", "tap0", "type", "veth", "peer", "name", "eth0")
            _ip(lease.netns, "link", "set", "eth0", "netns", guest.ns.name)
            guest.ip("addr", "add", f"{lease.vm_guest_ip}/30", "dev", "eth0")
            guest.ip("link", "set", "eth0", "address", lease.mac, "up")
            guest.ip("route", "add", "default", "via", lease.vm_gateway)
            await net.add_vm(lease, uid=None, gid=None)
            await net.add_vm(lease, uid=None, gid=None)  # idempotent
            guest.listen(GUEST_PORTS[slot])
        host.ip("link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns",
                outside.ns.name)  # fmt: skip
        host.ip("addr", "add", "198.51.100.1/24", "dev", "uplink")
        host.ip("link", "set", "uplink", "up")
        outside.ip("addr", "add", f"{PUBLIC}/24", "dev", "eth0")
        outside.ip("link", "set", "eth0", "up")
        outside.listen(8080)
        host.listen(CACHE_PORT)
        host.listen(API_PORT)
        yield net, leases
    finally:
        for lease in leases.values():
            with contextlib.suppress(network.NetworkError):
                await net.remove_vm(lease)
            if lease.netns:
                subprocess.run(["ip", "netns", "del", lease.netns], capture_output=True)


def _ip(namespace: str, *argv: str) -> None:
    subprocess.run(["ip", "-n", namespace, *argv], check=True, capture_output=True)


async def test_clones_share_one_address_and_the_host_sees_each_at_its_slot(
    boxes: dict[str, Box], clones: tuple[network.HostNetwork, dict[int, naming.NetLease]]
) -> None:
    _, leases = clones
    one, two = leases[1], leases[2]
    assert one.vm_guest_ip == two.vm_guest_ip == "10.254.254.2" and one.mac == two.mac
    assert one.guest_ip != two.guest_ip and one.netns != two.netns
    for slot, lease in leases.items():
        guest = boxes[f"guest{slot}"]
        assert guest.connects(lease.host_ip, CACHE_PORT), "a clone must reach its host's cache"
        assert boxes["host"].accepted_from(0) == lease.guest_ip  # seen at its own slot
        assert guest.connects(PUBLIC, 8080), "a clone must reach the internet"


async def test_the_host_reaches_each_clone_at_its_own_slot_address(
    boxes: dict[str, Box], clones: tuple[network.HostNetwork, dict[int, naming.NetLease]]
) -> None:
    _, leases = clones
    host = boxes["host"]
    assert host.connects(leases[1].guest_ip, GUEST_PORTS[1])
    assert host.connects(leases[2].guest_ip, GUEST_PORTS[2])
    assert not host.connects(leases[1].guest_ip, GUEST_PORTS[2])  # guest 1 there, not guest 2


async def test_a_clone_is_filtered_like_any_vm(
    boxes: dict[str, Box], clones: tuple[network.HostNetwork, dict[int, naming.NetLease]]
) -> None:
    _, leases = clones
    guest1 = boxes["guest1"]
    assert guest1.connects(leases[1].host_ip, CACHE_PORT)  # control
    assert not guest1.connects(leases[2].guest_ip, GUEST_PORTS[2]), "a clone reached another"
    assert not guest1.connects(leases[1].host_ip, API_PORT), "a clone reached the API port"


async def test_removing_a_clone_removes_its_namespace_interface_and_element(
    boxes: dict[str, Box], clones: tuple[network.HostNetwork, dict[int, naming.NetLease]]
) -> None:
    net, leases = clones
    host = boxes["host"]
    assert leases[1].netns in await net.list_namespaces()
    await net.remove_vm(leases[1])
    await net.remove_vm(leases[1])  # idempotent
    assert leases[1].netns not in await net.list_namespaces()
    assert await net.list_interfaces() == [leases[2].tap]
    assert host.ns.nft_elements(SETTINGS.nft_table) == [f'"{leases[2].tap}" . {leases[2].guest_ip}']
    assert boxes["guest2"].connects(leases[2].host_ip, CACHE_PORT)  # the other clone runs on
