"""Pure generation of our nftables ruleset and per-VM element commands (text for ``nft -f -``).

One table of family ``inet`` (``nft_table``) holds everything: NAT of the VM range to the outside,
and filters keyed on the host-side interface prefix, so VMs cannot talk to each other, to the
control plane's port, to the host or to private ranges (unless ``egress_allow`` lists them), and
cannot spoof their source address (``vm_addrs`` maps each of our interfaces to its one guest
address). Per VM only one set element is added and removed. ``network.py`` feeds this to ``nft``.
"""

from __future__ import annotations

from collections.abc import Sequence

from blacksmith_mini.vm.firecracker import naming

# Destinations a VM may not reach unless egress_allow says so (besides the host itself).
BLOCKED_RANGES: tuple[str, ...] = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/3",
)


def _elements(items: Sequence[str]) -> str:
    return "elements = { " + ", ".join(items) + " }" if items else ""


def vm_element(lease: naming.NetLease) -> str:
    """The ``vm_addrs`` element of one VM: ``"<iface>" . <guest ip>``."""
    return f'"{lease.tap}" . {lease.guest_ip}'


def ruleset(
    *,
    table: str,
    tap_prefix: str,
    network_cidr: str,
    egress_allow: Sequence[str],
    host_api_port: int | None,
    leases: Sequence[naming.NetLease],
    host_cache_port: int | None = None,
) -> str:
    """The whole table, replacing any previous version atomically (``nft -f -`` input). A VM
    reaches the host only on ``host_cache_port`` (the co-located Actions cache), if given."""
    wildcard = f'"{tap_prefix}*"'
    api_rule = f"tcp dport {host_api_port} drop" if host_api_port else ""
    cache_rule = f"tcp dport {host_cache_port} accept" if host_cache_port else ""
    blocked = sorted({*BLOCKED_RANGES, network_cidr})
    lines = [
        f"table inet {table} {{}}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        "  set vm_addrs {",
        "    type ifname . ipv4_addr",
        f"    {_elements([vm_element(lease) for lease in leases])}",
        "  }",
        "  set allowed {",
        "    type ipv4_addr; flags interval; auto-merge",
        f"    {_elements(list(egress_allow))}",
        "  }",
        "  set blocked {",
        "    type ipv4_addr; flags interval; auto-merge",
        f"    {_elements(blocked)}",
        "  }",
        "  chain vm_source {",
        "    meta nfproto ipv6 drop",
        "    iifname . ip saddr != @vm_addrs drop",
        "  }",
        "  chain vm_to_host {",
        "    jump vm_source",
        "    ct state established,related accept",
        f"    {api_rule}",
        f"    {cache_rule}",
        "    ip daddr @allowed accept",
        "    drop",
        "  }",
        "  chain vm_forward {",
        "    jump vm_source",
        f"    oifname {wildcard} drop",
        "    ct state established,related accept",
        "    ip daddr @allowed accept",
        "    ip daddr @blocked drop",
        "    accept",
        "  }",
        "  chain to_vm {",
        "    ct state established,related accept",
        "    drop",
        "  }",
        "  chain input {",
        "    type filter hook input priority filter - 10; policy accept;",
        f"    iifname {wildcard} jump vm_to_host",
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter - 10; policy accept;",
        f"    iifname {wildcard} jump vm_forward",
        f"    oifname {wildcard} jump to_vm",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f"    ip saddr {network_cidr} oifname != {wildcard} masquerade",
        "  }",
        "}",
    ]
    return "\n".join(line for line in lines if line.strip()) + "\n"


def add_vm(*, table: str, lease: naming.NetLease) -> str:
    """Commands letting one VM's traffic through (its anti-spoofing element)."""
    return f"add element inet {table} vm_addrs {{ {vm_element(lease)} }}\n"


def remove_vm(*, table: str, lease: naming.NetLease) -> str:
    """Commands removing one VM's element; they succeed whether or not it was there."""
    element = vm_element(lease)
    return (
        f"add element inet {table} vm_addrs {{ {element} }}\n"
        f"delete element inet {table} vm_addrs {{ {element} }}\n"
    )


CLONE_TABLE = "blacksmith_clone"


def clone_nat(lease: naming.NetLease) -> str:
    """The NAT table of a snapshot-mode VM's own namespace (``nft -f -`` there, replacing it):
    the guest's inside address leaves ``veth0`` as the slot's guest address and the slot's
    address arriving on ``veth0`` is the guest's, so clones sharing one inside address are
    each reached, and filtered by the host, at their own slot's address."""
    if not lease.inside:
        raise ValueError("clone_nat needs a lease with an inside /30")
    inside, outside = lease.vm_guest_ip, lease.guest_ip
    return (
        f"table ip {CLONE_TABLE}\n"
        f"delete table ip {CLONE_TABLE}\n"
        f"table ip {CLONE_TABLE} {{\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f'    iifname "veth0" ip daddr {outside} dnat to {inside}\n'
        "  }\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "veth0" ip saddr {inside} snat to {outside}\n'
        "  }\n"
        "}\n"
    )
