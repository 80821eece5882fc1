"""Pure naming, /30 maths, settings validation and the nftables ruleset (recording fake only)."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from blacksmith_mini.vm.firecracker import mmds, naming, nftables
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings


def test_instance_ids_are_valid_for_api_and_jailer() -> None:
    iid = naming.instance_id(vm_id=12, name="bm-pool_a-12")
    assert iid == "bm12xbmpoola12"
    assert naming.RESOURCE_ID.fullmatch(iid) and naming.INSTANCE_ID.fullmatch(iid)
    assert naming.instance_id(vm_id=1, name="2abc") != naming.instance_id(vm_id=12, name="abc")
    assert len(naming.instance_id(vm_id=1, name="x" * 200)) == 64
    with pytest.raises(ValueError, match="alphanumeric characters and underscores"):
        naming.check_resource_id("root-fs")


def test_slot_math_is_one_slash_30_per_vm() -> None:
    lease = naming.lease_for_slot(network_cidr="172.16.0.0/16", tap_prefix="bmtap", slot=64)
    assert (lease.host_ip, lease.guest_ip, lease.netmask) == (
        "172.16.1.1",
        "172.16.1.2",
        "255.255.255.252",
    )
    assert lease.mac == "06:00:AC:10:01:02" and lease.tap == "bmtap64"
    nets = set()
    for slot in range(0, 16384, 97):
        lease = naming.lease_for_slot(network_cidr="172.16.0.0/16", tap_prefix="bmtap", slot=slot)
        net = ipaddress.ip_network(f"{lease.guest_ip}/30", strict=False)
        assert ipaddress.ip_address(lease.host_ip) in net and net not in nets
        nets.add(net)
    with pytest.raises(ValueError, match="outside"):
        naming.lease_for_slot(network_cidr="172.16.0.0/16", tap_prefix="bmtap", slot=16384)


def test_every_interface_name_fits_15_chars() -> None:
    s = FirecrackerSettings()
    last = naming.lease_for_slot(
        network_cidr=s.network_cidr, tap_prefix=s.tap_prefix, slot=s.slot_count - 1
    )
    assert last.tap == "bmtap16383" and len(last.tap) <= 15
    with pytest.raises(ValidationError, match="15 characters"):
        FirecrackerSettings(tap_prefix="averylongprefix", network_cidr="10.0.0.0/8")


def test_pick_slot_reuses_the_lowest_free() -> None:
    assert naming.pick_slot(used=[0, 1, 3], slot_count=8) == 2
    with pytest.raises(ValueError, match="widen network_cidr"):
        naming.pick_slot(used=range(4), slot_count=4)


def test_kernel_ip_argument() -> None:
    lease = naming.lease_for_slot(network_cidr="172.16.0.0/16", tap_prefix="bmtap", slot=0)
    assert naming.kernel_ip_arg(lease=lease, dns_servers=["1.1.1.1"]) == (
        "ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off:1.1.1.1"
    )


def test_settings_require_reboot_k_and_refuse_ip() -> None:
    with pytest.raises(ValidationError, match="reboot=k"):
        FirecrackerSettings(boot_args="console=ttyS0 panic=1")
    with pytest.raises(ValidationError, match="ip="):
        FirecrackerSettings(boot_args="reboot=k ip=1.2.3.4")
    with pytest.raises(ValidationError):
        FirecrackerSettings(unknown_field=1)  # type: ignore[call-arg]


def test_ruleset_isolates_vms() -> None:
    leases = [
        naming.lease_for_slot(network_cidr="172.16.0.0/16", tap_prefix="bmtap", slot=n)
        for n in (0, 1)
    ]
    text = nftables.ruleset(
        table="bm",
        tap_prefix="bmtap",
        network_cidr="172.16.0.0/16",
        egress_allow=["10.9.0.0/16"],
        host_api_port=8000,
        leases=leases,
    )
    assert "table inet bm {" in text and "delete table inet bm" in text
    assert 'elements = { "bmtap0" . 172.16.0.2, "bmtap1" . 172.16.0.6 }' in text
    assert 'oifname "bmtap*" drop' in text  # VM -> VM
    assert "tcp dport 8000 drop" in text  # the control plane's port
    assert "iifname . ip saddr != @vm_addrs drop" in text  # no spoofing
    assert "ip daddr @blocked drop" in text and "192.168.0.0/16" in text
    assert "10.9.0.0/16" in text  # allowed before the block
    assert text.index("ip daddr @allowed accept") < text.index("ip daddr @blocked drop")
    assert 'ip saddr 172.16.0.0/16 oifname != "bmtap*" masquerade' in text
    # the host's own addresses: everything from a VM to the host is dropped unless allowed
    to_host = text[text.index("chain vm_to_host") : text.index("chain vm_forward")]
    assert to_host.strip().endswith("drop\n  }") or "    drop\n" in to_host


def test_per_vm_element_commands_are_idempotent() -> None:
    lease = naming.lease_for_slot(network_cidr="172.16.0.0/16", tap_prefix="bmtap", slot=2)
    assert nftables.add_vm(table="bm", lease=lease) == (
        'add element inet bm vm_addrs { "bmtap2" . 172.16.0.10 }\n'
    )
    assert nftables.remove_vm(table="bm", lease=lease).splitlines()[-1].startswith("delete element")


def test_mmds_refuses_github_tokens() -> None:
    with pytest.raises(ValueError, match="GitHub token"):
        mmds.check_no_github_token({"a": ["ghs_" + "x" * 36]})
    with pytest.raises(ValueError, match="token"):
        mmds.check_no_github_token({"github_token": "x"})
    mmds.check_no_github_token({"runner_jit_config": "eyJhIjoiYiJ9"})


def test_only_the_cache_port_of_the_host_is_open_to_vms() -> None:
    lease = naming.lease_for_slot(network_cidr="172.16.0.0/16", tap_prefix="bmtap", slot=0)
    common = {
        "table": "bm",
        "tap_prefix": "bmtap",
        "network_cidr": "172.16.0.0/16",
        "egress_allow": [],
        "host_api_port": 8000,
        "leases": [lease],
    }
    with_cache = nftables.ruleset(**common, host_cache_port=8010)  # type: ignore[arg-type]
    to_host = with_cache[
        with_cache.index("chain vm_to_host") : with_cache.index("chain vm_forward")
    ]
    assert "tcp dport 8010 accept" in to_host
    assert to_host.index("jump vm_source") < to_host.index("tcp dport 8010 accept")
    assert to_host.index("tcp dport 8000 drop") < to_host.index("tcp dport 8010 accept")
    without = nftables.ruleset(**common)  # type: ignore[arg-type]
    assert "8010" not in without and "dport" in without


def spec_with_cache(token: str) -> object:
    from blacksmith_mini.vm import driver

    return driver.VmSpec(
        vm_id=3,
        name="bm-default-3",
        pool="default",
        labels=("self-hosted",),
        vcpus=2,
        memory_mib=1024,
        jit_config="eyJqaXQiOjF9",
        cache={
            "url": "http://{host_ip}:8010/",
            "token": token,
            "fallback_url": "https://results-receiver.actions.githubusercontent.com/",
        },
    )


def test_the_cache_boot_data_points_at_the_vms_gateway_and_is_removed_after_the_ack() -> None:
    spec = spec_with_cache("bmc1.eyJ2bSI6IjMifQ.c2ln")
    store = mmds.boot_data(
        spec,  # type: ignore[arg-type]
        instance_id="i",
        ssh_public_key=None,
        keep_on_failure_seconds=0,
        dns_servers=["1.1.1.1"],
        host_ip="172.16.0.1",
    )
    cache = store["latest"]["meta-data"]["blacksmith"]["cache"]
    assert cache["url"] == "http://172.16.0.1:8010/"
    assert cache["token"].startswith("bmc1.")
    remainder = mmds.public_remainder(store)["latest"]["meta-data"]["blacksmith"]
    assert "cache" not in remainder and "runner_jit_config" not in remainder
    assert "token" not in repr(spec)


def test_the_cache_token_field_takes_only_our_own_tokens() -> None:
    with pytest.raises(ValueError, match="bmc1"):
        mmds.boot_data(
            spec_with_cache("ghs_" + "x" * 36),  # type: ignore[arg-type]
            instance_id="i",
            ssh_public_key=None,
            keep_on_failure_seconds=0,
            dns_servers=[],
        )
    with pytest.raises(ValueError, match="token"):
        mmds.check_no_github_token({"other": {"token": "bmc1.a.b"}})
