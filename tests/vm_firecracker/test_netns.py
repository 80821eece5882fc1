"""The real HostNetwork (pyroute2 + nft) inside a network namespace we create ourselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from blacksmith_mini.vm.firecracker import naming, network
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

pytestmark = [pytest.mark.netns, pytest.mark.anyio]


@pytest.fixture
def netns_name() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("netns tests need root")
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (apt-get install nftables)")
    name = f"bmtest{uuid.uuid4().hex[:6]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create network namespaces here")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def ns(name: str, *argv: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", name, *argv], capture_output=True, text=True, check=True
    ).stdout


async def test_tap_address_and_rules(netns_name: str) -> None:
    s = FirecrackerSettings(egress_allow=("10.20.0.0/16",))
    net = network.HostNetwork(settings=s, netns_name=netns_name)
    await net.prepare([])
    lease = naming.lease_for_slot(network_cidr=s.network_cidr, tap_prefix=s.tap_prefix, slot=64)
    await net.add_vm(lease, uid=4242, gid=4242)
    await net.add_vm(lease, uid=4242, gid=4242)  # idempotent
    assert await net.list_interfaces() == ["bmtap64"]
    assert "172.16.1.1/30" in ns(netns_name, "ip", "-br", "addr", "show", "bmtap64")
    assert "tun" in ns(netns_name, "ip", "-d", "link", "show", "bmtap64")
    elements = ns(netns_name, "nft", "list", "set", "inet", s.nft_table, "vm_addrs")
    assert '"bmtap64" . 172.16.1.2' in elements
    ruleset = ns(netns_name, "nft", "list", "table", "inet", s.nft_table)
    assert 'oifname "bmtap*" drop' in ruleset and "masquerade" in ruleset
    assert ns(netns_name, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"
    await net.prepare([lease])  # re-preparing keeps live VMs' elements
    assert '"bmtap64"' in ns(netns_name, "nft", "list", "set", "inet", s.nft_table, "vm_addrs")
    await net.remove_vm(lease)
    await net.remove_vm(lease)  # idempotent
    assert await net.list_interfaces() == []
    assert "bmtap64" not in ns(netns_name, "nft", "list", "set", "inet", s.nft_table, "vm_addrs")


async def test_jailed_vm_gets_its_own_namespace(netns_name: str) -> None:
    s = FirecrackerSettings()
    net = network.HostNetwork(settings=s, netns_name=netns_name)
    await net.prepare([])
    vm_ns = network.namespace_name(tap_prefix=s.tap_prefix, instance_id=f"bm1x{netns_name}")
    lease = naming.lease_for_slot(
        network_cidr=s.network_cidr, tap_prefix=s.tap_prefix, slot=3, netns=vm_ns
    )
    try:
        await net.add_vm(lease, uid=4243, gid=4243)
        assert vm_ns in await net.list_namespaces()
        assert "172.16.0.13/30" in ns(netns_name, "ip", "-br", "addr", "show", "bmtap3")
        inner = ns(vm_ns, "ip", "-br", "link")
        assert "tap0" in inner and "veth0" in inner
        assert "Egress Redirect to device tap0" in ns(
            vm_ns, "tc", "filter", "show", "dev", "veth0", "ingress"
        )
        await net.remove_vm(lease)
        assert vm_ns not in await net.list_namespaces()
        assert await net.list_interfaces() == []
    finally:
        subprocess.run(["ip", "netns", "del", vm_ns], capture_output=True, check=False)


async def test_readiness_check_finds_a_missing_table(netns_name: str) -> None:
    s = FirecrackerSettings()
    net = network.HostNetwork(settings=s, netns_name=netns_name)
    with pytest.raises(network.NetworkError, match=f"inet {s.nft_table}.*fix:"):
        await net.check()  # nothing installed in this fresh namespace yet
    await net.prepare([])
    await net.check()
    ns(netns_name, "nft", "delete", "table", "inet", s.nft_table)  # another tool flushed it
    with pytest.raises(network.NetworkError, match="missing"):
        await net.check()
