"""Placement: which host a new VM goes to, or why none can take it. Pure; stdlib only.

A host takes a VM when it is up (cordoned, draining and down hosts get nothing new), has the
architecture the job's labels ask for (``x64``/``arm64``; none asked: any) and the driver the
request names, and the VM fits: reserved vCPUs and memory within capacity times the
overcommit, disk within capacity. ``spread`` picks the host with the most free room, ``pack``
the fullest that still fits; room is the host's dominant share (the largest used fraction of
vCPUs, memory and disk once the VM is on it), ties go by name. ``place_many`` counts what it
already placed, so a batch never overfills a host: O((requests + hosts) * log(hosts)).
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence

# Architecture labels a job may carry (lower-cased) -> the host architecture they ask for.
ARCH_LABELS: Mapping[str, str] = {
    **dict.fromkeys(("x64", "amd64", "x86_64"), "x64"),
    **dict.fromkeys(("arm64", "aarch64"), "arm64"),
    "arm": "arm",
}
MAX_OVERCOMMIT = 4.0


class HostState(enum.StrEnum):
    """Whether a host takes new VMs: only ``up`` ones do."""

    UP = "up"
    CORDONED = "cordoned"  # keeps its VMs, takes no new ones
    DRAINING = "draining"  # takes no new ones; its VMs finish and it empties
    DOWN = "down"  # unreachable


class Strategy(enum.StrEnum):
    """Spread VMs over the emptiest hosts, or pack them onto the fullest that fit."""

    SPREAD = "spread"
    PACK = "pack"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Host:
    """A machine that runs VMs, and its size (before overcommit)."""

    name: str
    arch: str = "x64"
    vcpus: int
    memory_mib: int
    disk_mib: int
    state: HostState = HostState.UP
    drivers: frozenset[str] = frozenset({"firecracker"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Reservation:
    """Resources held on a host: by its VMs (usage) or by one VM (a request's size)."""

    vcpus: int = 0
    memory_mib: int = 0
    disk_mib: int = 0

    def plus(self, other: Reservation) -> Reservation:
        return Reservation(
            vcpus=self.vcpus + other.vcpus,
            memory_mib=self.memory_mib + other.memory_mib,
            disk_mib=self.disk_mib + other.disk_mib,
        )

    def within(self, room: Reservation) -> bool:
        """Whether this much fits in ``room`` on every resource."""
        return (
            self.vcpus <= room.vcpus
            and self.memory_mib <= room.memory_mib
            and self.disk_mib <= room.disk_mib
        )


EMPTY = Reservation()
_Triple = tuple[int, int, int]  # vCPUs, memory MiB, disk MiB


@dataclasses.dataclass(frozen=True, kw_only=True)
class Request:
    """One VM to place: its size, the job's ``runs-on`` labels and, optionally, its driver."""

    vcpus: int
    memory_mib: int
    disk_mib: int = 0
    labels: tuple[str, ...] = ()
    driver: str | None = None

    def __post_init__(self) -> None:
        if min(self.vcpus, self.memory_mib, self.disk_mib) < 0:
            raise ValueError("a VM cannot ask for negative resources")

    @property
    def size(self) -> Reservation:
        return _reservation((self.vcpus, self.memory_mib, self.disk_mib))

    @property
    def archs(self) -> frozenset[str]:
        """The architectures the job's labels ask for (empty: any)."""
        found = (label.strip().lower() for label in self.labels)
        return frozenset(ARCH_LABELS[label] for label in found if label in ARCH_LABELS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Overcommit:
    """How far reservations may exceed a host's real vCPUs and memory (1.0: not at all)."""

    cpu: float = 1.0
    memory: float = 1.0

    def __post_init__(self) -> None:
        for name, value in (("cpu", self.cpu), ("memory", self.memory)):
            if not 1.0 <= value <= MAX_OVERCOMMIT:
                raise ValueError(f"{name} overcommit must be 1.0-{MAX_OVERCOMMIT}, not {value}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Placement:
    """The host a VM goes to, or in words why no host takes it."""

    host: str | None
    reason: str | None = None

    @property
    def placed(self) -> bool:
        return self.host is not None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Batch:
    """A batch's placements, in request order, and each host's usage once they are made."""

    placements: tuple[Placement, ...]
    usage: Mapping[str, Reservation]


def capacity(host: Host, overcommit: Overcommit) -> Reservation:
    """What may be reserved on ``host``: its vCPUs and memory times the overcommit, rounded
    down, and its disk."""
    return Reservation(
        vcpus=int(host.vcpus * overcommit.cpu),
        memory_mib=int(host.memory_mib * overcommit.memory),
        disk_mib=host.disk_mib,
    )


def usage_of(reservations: Iterable[tuple[str, Reservation]]) -> dict[str, Reservation]:
    """Each host's usage from (host name, one VM's reservation) pairs."""
    totals: dict[str, _Triple] = {}
    for host, size in reservations:
        vcpus, memory, disk = totals.get(host, (0, 0, 0))
        totals[host] = (vcpus + size.vcpus, memory + size.memory_mib, disk + size.disk_mib)
    return {name: _reservation(total) for name, total in totals.items()}


def place(
    request: Request,
    hosts: Sequence[Host],
    *,
    usage: Mapping[str, Reservation],
    strategy: Strategy = Strategy.SPREAD,
    overcommit: Overcommit = Overcommit(),
) -> Placement:
    """The host ``request`` goes to, or why none takes it."""
    batch = place_many([request], hosts, usage=usage, strategy=strategy, overcommit=overcommit)
    return batch.placements[0]


def place_many(
    requests: Iterable[Request],
    hosts: Sequence[Host],
    *,
    usage: Mapping[str, Reservation],
    strategy: Strategy = Strategy.SPREAD,
    overcommit: Overcommit = Overcommit(),
) -> Batch:
    """Place ``requests`` in order, each counting the ones placed before it. Why a request
    found no host is said as the hosts stand once the batch is placed (room only shrinks)."""
    batch = Placer(hosts, usage=usage, strategy=strategy, overcommit=overcommit)
    chosen = [(request, batch.host_for(request)) for request in requests]
    placements = tuple(
        Placement(host=name) if name is not None else Placement(host=None, reason=batch.why(ask))
        for ask, name in chosen
    )
    return Batch(placements=placements, usage=batch.usage())


def no_host_reason(request: Request, hosts: Sequence[Host]) -> str | None:
    """Why no host could ever take ``request`` as the hosts stand (architecture, driver,
    state), whatever their usage; None when some host could."""
    if not hosts:
        return "no hosts are registered"
    archs = request.archs
    if len(archs) > 1:
        return f"the job asks for more than one architecture: {' and '.join(sorted(archs))}"
    arch = next(iter(archs), None)
    kind = f"{arch} host" if arch else "host"
    found = [host for host in hosts if arch is None or _arch(host) == arch]
    if not found:
        return f"no {kind}"
    if request.driver is not None:
        found = [host for host in found if request.driver in host.drivers]
        if not found:
            return f"no {kind} has the {request.driver} driver"
    if any(host.state is HostState.UP for host in found):
        return None
    return _unavailable(kind, {host.state for host in found})


def room_reason(request: Request, candidates: Sequence[tuple[Host, Reservation]]) -> str:
    """Why none of ``candidates`` (each an up host with its free room) has room for
    ``request``: the first resource no host has enough of, with the host closest to it."""
    size = request.size
    for field, show in _DIMENSIONS:
        wanted: int = getattr(size, field)
        host, room = min(candidates, key=lambda pair: (-getattr(pair[1], field), pair[0].name))
        largest: int = getattr(room, field)
        if largest < wanted:
            return (
                f"no host has {show(wanted)} free "
                f"(largest free: {host.name} with {show(max(0, largest))})"
            )
    return (
        f"no host has {_cpus(size.vcpus)}, {gib(size.memory_mib)} memory and "
        f"{gib(size.disk_mib)} disk free at once"
    )


def gib(mib: int) -> str:
    """A size in words: ``16 GiB``, ``12.5 GiB``, ``512 MiB``."""
    if abs(mib) < 1024:
        return f"{mib} MiB"
    return f"{mib / 1024:.1f}".removesuffix(".0") + " GiB"


def _arch(host: Host) -> str:
    arch = host.arch.strip().lower()
    return ARCH_LABELS.get(arch, arch)


def _unavailable(kind: str, states: set[HostState]) -> str:
    if states == {HostState.DOWN}:
        return f"every {kind} is down"
    if HostState.DOWN in states:
        return f"every {kind} is cordoned, draining or down"
    return f"every {kind} is cordoned or draining"


def _cpus(count: int) -> str:
    return f"{count} vCPU" if count == 1 else f"{count} vCPUs"


_DIMENSIONS: tuple[tuple[str, Callable[[int], str]], ...] = (
    ("vcpus", _cpus),
    ("memory_mib", gib),
    ("disk_mib", lambda mib: f"{gib(mib)} disk"),
)


_Shape = tuple[int, int, int, tuple[str, ...], str | None]
_Entry = tuple[float, str, int]  # (score, host name, the host's version when scored)


class Placer:
    """Requests placed one after another (``place_many``'s bookkeeping). Each request shape
    (size, labels, driver) has a heap of the hosts that may take it, by score; a host that
    takes a VM is scored afresh in each of its heaps (older entries skipped), one that no
    longer fits leaves the heap. Room only shrinks: once a shape finds no host, none after."""

    def __init__(
        self,
        hosts: Sequence[Host],
        *,
        usage: Mapping[str, Reservation],
        strategy: Strategy,
        overcommit: Overcommit,
    ) -> None:
        self._hosts = hosts
        self._usage_in = usage
        self._cap = {host.name: _triple(capacity(host, overcommit)) for host in hosts}
        self._used = {host.name: _triple(usage.get(host.name, EMPTY)) for host in hosts}
        self._sign = 1.0 if strategy is Strategy.SPREAD else -1.0
        self._version = dict.fromkeys(self._cap, 0)
        self._heaps: dict[_Shape, list[_Entry]] = {}
        self._members: dict[_Shape, set[str]] = {}
        self._shapes_of: dict[str, list[_Shape]] = {name: [] for name in self._cap}
        self._refused: dict[_Shape, str] = {}
        self._reasons: dict[_Shape, str] = {}

    def host_for(self, request: Request) -> str | None:
        """The host ``request`` goes to (now reserved for it), or None."""
        shape = _shape(request)
        if shape not in self._heaps and shape not in self._refused:
            self._open(shape, request)
        if shape in self._refused:
            return None
        return self._take(shape)

    def why(self, request: Request) -> str:
        """Why ``request`` found no host, as the hosts stand now."""
        shape = _shape(request)
        if shape in self._refused:
            return self._refused[shape]
        if shape not in self._reasons:
            eligible = [host for host in self._hosts if _takes(host, request)]
            self._reasons[shape] = room_reason(request, [(h, self._free(h.name)) for h in eligible])
        return self._reasons[shape]

    def usage(self) -> dict[str, Reservation]:
        return {**self._usage_in, **{name: _reservation(t) for name, t in self._used.items()}}

    def _open(self, shape: _Shape, request: Request) -> None:
        refused = no_host_reason(request, self._hosts)
        if refused is not None:
            self._refused[shape] = refused
            return
        eligible = [host.name for host in self._hosts if _takes(host, request)]
        self._members[shape] = set(eligible)
        for name in eligible:
            self._shapes_of[name].append(shape)
        heap = [self._entry(name, shape) for name in eligible]
        heapq.heapify(heap)
        self._heaps[shape] = heap

    def _take(self, shape: _Shape) -> str | None:
        heap, members = self._heaps[shape], self._members[shape]
        while heap:
            _, name, version = heap[0]
            if version != self._version[name] or name not in members:
                heapq.heappop(heap)
                continue
            if not self._fits(name, shape):
                heapq.heappop(heap)
                members.discard(name)
                continue
            self._reserve(name, shape)
            return name
        return None

    def _reserve(self, name: str, shape: _Shape) -> None:
        vcpus, memory, disk = self._used[name]
        self._used[name] = (vcpus + shape[0], memory + shape[1], disk + shape[2])
        self._version[name] += 1
        for other in self._shapes_of[name]:
            if name in self._members[other]:
                heapq.heappush(self._heaps[other], self._entry(name, other))

    def _fits(self, name: str, shape: _Shape) -> bool:
        (cap_v, cap_m, cap_d), (vcpus, memory, disk) = self._cap[name], self._used[name]
        return vcpus + shape[0] <= cap_v and memory + shape[1] <= cap_m and disk + shape[2] <= cap_d

    def _entry(self, name: str, shape: _Shape) -> _Entry:
        """The host's dominant share once a VM of ``shape`` is on it: lowest first when
        spreading, highest first when packing."""
        (cap_v, cap_m, cap_d), (vcpus, memory, disk) = self._cap[name], self._used[name]
        share = max(
            _fraction(vcpus + shape[0], cap_v),
            _fraction(memory + shape[1], cap_m),
            _fraction(disk + shape[2], cap_d),
        )
        return (self._sign * share, name, self._version[name])

    def _free(self, name: str) -> Reservation:
        (cap_v, cap_m, cap_d), (vcpus, memory, disk) = self._cap[name], self._used[name]
        return _reservation((cap_v - vcpus, cap_m - memory, cap_d - disk))


def _shape(request: Request) -> _Shape:
    return (request.vcpus, request.memory_mib, request.disk_mib, request.labels, request.driver)


def _reservation(triple: _Triple) -> Reservation:
    return Reservation(vcpus=triple[0], memory_mib=triple[1], disk_mib=triple[2])


def _triple(reserved: Reservation) -> _Triple:
    return (reserved.vcpus, reserved.memory_mib, reserved.disk_mib)


def _takes(host: Host, request: Request) -> bool:
    """Whether ``host`` may take ``request`` at all: up, the right architecture and driver."""
    if host.state is not HostState.UP:
        return False
    if request.driver is not None and request.driver not in host.drivers:
        return False
    archs = request.archs
    return not archs or _arch(host) in archs


def _fraction(used: int, cap: int) -> float:
    return used / cap if cap > 0 else (0.0 if used <= 0 else float("inf"))
