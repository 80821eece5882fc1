"""Settings of the Firecracker driver, mounted by the application settings as ``[vm.firecracker]``.

Every field has a default that works on a typical host once ``kernel_path`` and ``rootfs_path``
point at an image built by ``blacksmith-mini image build`` (see ``image.py``). Validation here
catches what would otherwise fail late and obscurely (a tap prefix too long for 15-character
interface names, a network range too small for one ``/30``, boot args without ``reboot=k``).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RootfsStrategyName = Literal["reflink", "sparse-copy", "auto"]

MAX_IFNAME = 15  # IFNAMSIZ - 1


class JailerSettings(BaseModel):
    """How the jailer confines each Firecracker process (used only when ``jailer_bin`` is set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chroot_base_dir: Path = Field(
        default=Path("/srv/jailer"),
        description="Jail roots go to <chroot_base_dir>/firecracker/<id>/root. Keep it on the "
        "same filesystem as data_dir so the kernel can be hard-linked instead of copied.",
    )
    uid_base: int = Field(
        default=200000, ge=1, description="VM slot n runs as uid uid_base + n (never 0)."
    )
    gid_base: int = Field(default=200000, ge=1, description="VM slot n runs as gid gid_base + n.")
    parent_cgroup: str = Field(
        default="blacksmith-mini", description="cgroup v2 parent of every VM's cgroup."
    )
    netns: bool = Field(
        default=True,
        description="Give every VM its own network namespace /var/run/netns/<id>; the tap "
        "lives inside it and is joined to the host by a veth pair.",
    )
    no_file_limit: int = Field(default=2048, ge=64, description="RLIMIT_NOFILE of Firecracker.")
    fsize_limit_mib: int | None = Field(
        default=None, ge=1, description="RLIMIT_FSIZE of Firecracker in MiB (None: unlimited)."
    )
    cpu_quota_percent_per_vcpu: int = Field(
        default=100, ge=1, le=100, description="cgroup cpu.max per vCPU, in percent of a core."
    )
    memory_overhead_mib: int = Field(
        default=64, ge=0, description="memory.max is the guest memory plus this VMM overhead."
    )


class FirecrackerSettings(BaseModel):
    """``[vm.firecracker]``: how the driver runs one Firecracker microVM per job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    firecracker_bin: Path = Field(
        default=Path("/usr/local/bin/firecracker"),
        description="Firecracker binary (v1.16.x, static musl build).",
    )
    jailer_bin: Path | None = Field(
        default=None,
        description="Jailer binary of the same version. When set, every VM runs jailed: "
        "cgroup v2, its own uid/gid, chroot, network namespace and resource limits.",
    )
    jailer: JailerSettings = Field(default_factory=JailerSettings)
    kernel_path: Path = Field(
        default=Path("/var/lib/blacksmith-mini/images/vmlinux"),
        description="Uncompressed ELF guest kernel (vmlinux), from `blacksmith-mini image build`.",
    )
    rootfs_path: Path = Field(
        default=Path("/var/lib/blacksmith-mini/images/rootfs.ext4"),
        description="Base ext4 root filesystem; each VM boots a copy-on-write clone of it.",
    )
    boot_args: str = Field(
        default="console=ttyS0 reboot=k panic=1 pci=off",
        description="Kernel command line. Must contain reboot=k (so a guest reboot ends "
        "Firecracker). The driver appends the guest's ip= configuration.",
    )
    network_cidr: str = Field(
        default="172.16.0.0/16",
        description="Range split into one /30 per VM slot: tap = .1, guest = .2 of each /30.",
    )
    tap_prefix: str = Field(
        default="bmtap",
        description="Prefix of every interface the driver creates (taps, veths). Anything with "
        "this prefix and no live VM is removed by the sweep.",
    )
    nft_table: str = Field(
        default="blacksmith_mini", description="Our own nftables table (family inet)."
    )
    dns_servers: tuple[str, ...] = Field(
        default=("1.1.1.1", "8.8.8.8"),
        description="Resolvers given to the guest (at most two, via the kernel ip= argument).",
    )
    egress_allow: tuple[str, ...] = Field(
        default=(),
        description="CIDRs a VM may reach although they are private or belong to the host "
        "(e.g. a package cache). Everything public is reachable; other VMs never are.",
    )
    host_api_port: int | None = Field(
        default=8000,
        ge=1,
        le=65535,
        description="The control plane's port, refused from VMs even if egress_allow covers it.",
    )
    host_cache_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The co-located Actions cache's port, the one host port VMs may reach "
        "(set from [cache] by the control plane).",
    )
    snapshots: bool = Field(
        default=False,
        description="Start VMs by restoring a snapshot of a per-pool template VM paused while "
        "its agent waits for boot data (cold boot when none is ready or a restore fails). "
        "Needs the same host kernel and Firecracker as made the template; not with the jailer "
        "yet. Experimental: proven against the fake only.",
    )
    clone_network_cidr: str = Field(
        default="10.254.254.0/30",
        description="With snapshots: the /30 every VM's guest sees inside its own network "
        "namespace (a clone keeps its template's address); the namespace translates it to "
        "the VM's slot in network_cidr, so the host sees each VM as before. Must not overlap "
        "network_cidr or anything in egress_allow.",
    )
    rootfs_strategy: RootfsStrategyName = Field(
        default="auto",
        description="reflink (FICLONE, needs XFS/btrfs), sparse-copy, or auto (reflink, "
        "falling back to a sparse copy).",
    )
    min_free_disk_mib: int = Field(
        default=2048, ge=0, description="Refuse to start a VM below this much free disk."
    )
    boot_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds after InstanceStart within which the guest agent must acknowledge "
        "its boot data; the driver stops (SIGKILL) a VM that has not, saying why in its detail.",
    )
    api_timeout: float = Field(
        default=2.0, gt=0, description="Seconds for each Firecracker API call."
    )
    socket_timeout: float = Field(
        default=3.0, gt=0, description="Seconds to wait for the API socket after spawning."
    )
    stop_grace_seconds: float = Field(
        default=10.0, ge=0, description="After SendCtrlAltDel, SIGKILL once this has passed."
    )
    keep_on_failure_minutes: float = Field(
        default=0.0,
        ge=0,
        description="Keep a VM whose job failed this long (fractions allowed, e.g. 0.5) for "
        "`blacksmith-mini ssh VM_ID`: a graceful stop waits for the keep's end, a forced one "
        "does not; 0 disables.",
    )
    ssh_public_key_path: Path | None = Field(
        default=None,
        description="Public key installed for the guest user `runner` (via MMDS boot data).",
    )
    ssh_private_key_path: Path | None = Field(
        default=None, description="Private key used by `blacksmith-mini ssh VM_ID`."
    )
    console_max_bytes: int = Field(
        default=1_048_576, ge=4096, description="Bound of each VM's serial console log."
    )
    log_level: Literal["Error", "Warning", "Info", "Debug", "Trace", "Off"] = Field(
        default="Warning", description="Firecracker's own log level (PUT /logger)."
    )

    @field_validator("boot_args")
    @classmethod
    def _reboot_k(cls, value: str) -> str:
        if "reboot=k" not in value.split():
            raise ValueError("boot_args must contain reboot=k, or a guest reboot never ends the VM")
        if any(arg.startswith("ip=") for arg in value.split()):
            raise ValueError("boot_args must not contain ip=: the driver sets it per VM")
        return value

    @field_validator("network_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        net = ipaddress.ip_network(value, strict=True)
        if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen > 30:
            raise ValueError("network_cidr must be an IPv4 network of /30 or larger")
        return value

    @field_validator("clone_network_cidr")
    @classmethod
    def _clone_cidr(cls, value: str) -> str:
        net = ipaddress.ip_network(value, strict=True)
        if not isinstance(net, ipaddress.IPv4Network) or net.prefixlen != 30:
            raise ValueError("clone_network_cidr must be one IPv4 /30, e.g. 10.254.254.0/30")
        return value

    @field_validator("egress_allow")
    @classmethod
    def _allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            if not isinstance(ipaddress.ip_network(cidr, strict=False), ipaddress.IPv4Network):
                raise ValueError(f"egress_allow entry {cidr!r} is not IPv4")
        return value

    @field_validator("dns_servers")
    @classmethod
    def _dns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > 2:
            raise ValueError("at most two dns_servers (the kernel ip= argument takes two)")
        for server in value:
            ipaddress.IPv4Address(server)
        return value

    @field_validator("nft_table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", value):
            raise ValueError("nft_table must be a letter then letters, digits or _ (max 32)")
        return value

    @model_validator(mode="after")
    def _tap_names_fit(self) -> FirecrackerSettings:
        if not re.fullmatch(r"[a-z][a-z0-9]*", self.tap_prefix):
            raise ValueError(
                "tap_prefix must be lowercase letters and digits, starting with a letter"
            )
        longest = len(self.tap_prefix) + len(str(self.slot_count - 1))
        if longest > MAX_IFNAME:
            raise ValueError(
                f"tap_prefix {self.tap_prefix!r} is too long for {self.slot_count} slots: "
                f"interface names must stay within {MAX_IFNAME} characters"
            )
        return self

    @model_validator(mode="after")
    def _clone_cidr_apart(self) -> FirecrackerSettings:
        inside = ipaddress.IPv4Network(self.clone_network_cidr)
        for name, cidr in [("network_cidr", self.network_cidr)] + [
            ("egress_allow", c) for c in self.egress_allow
        ]:
            if inside.overlaps(ipaddress.IPv4Network(cidr, strict=False)):
                raise ValueError(
                    f"clone_network_cidr {inside} overlaps {name} {cidr}: pick another /30 "
                    "for the guests' inside address"
                )
        return self

    @property
    def slot_count(self) -> int:
        """How many /30 VM slots ``network_cidr`` holds."""
        return int(ipaddress.IPv4Network(self.network_cidr).num_addresses // 4)
