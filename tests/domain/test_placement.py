"""Placement: a table per rule, and hypothesis for capacity, host states and choice."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blacksmith_mini.domain import placement as pl
from blacksmith_mini.domain.placement import HostState, Reservation, Strategy

GIB = 1024
UP, CORDONED, DRAINING, DOWN = HostState.UP, HostState.CORDONED, HostState.DRAINING, HostState.DOWN


def host(
    name: str,
    *,
    vcpus: int = 16,
    memory_gib: int = 64,
    disk_gib: int = 500,
    arch: str = "x64",
    state: HostState = UP,
    drivers: frozenset[str] = frozenset({"firecracker"}),
) -> pl.Host:
    return pl.Host(
        name=name,
        arch=arch,
        vcpus=vcpus,
        memory_mib=memory_gib * GIB,
        disk_mib=disk_gib * GIB,
        state=state,
        drivers=drivers,
    )


def vm(
    vcpus: int = 2,
    memory_gib: int = 4,
    *,
    disk_gib: int = 20,
    labels: tuple[str, ...] = (),
    driver: str | None = None,
) -> pl.Request:
    return pl.Request(
        vcpus=vcpus,
        memory_mib=memory_gib * GIB,
        disk_mib=disk_gib * GIB,
        labels=("self-hosted", "linux", *labels),
        driver=driver,
    )


def used(vcpus: int = 0, memory_gib: int = 0, *, disk_gib: int = 0) -> Reservation:
    return Reservation(vcpus=vcpus, memory_mib=memory_gib * GIB, disk_mib=disk_gib * GIB)


def where(request: pl.Request, hosts: list[pl.Host], **kwargs: object) -> str | None:
    usage = kwargs.pop("usage", {})
    found = pl.place(request, hosts, usage=usage, **kwargs)  # type: ignore[arg-type]
    return found.host if found.placed else found.reason


# --- capacity and overcommit -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reserved", "request_vcpus", "cpu", "expected"),
    [
        (14, 2, 1.0, "a"),  # exactly full
        (15, 2, 1.0, "no host has 2 vCPUs free (largest free: a with 1 vCPU)"),
        (15, 2, 1.5, "a"),  # 16 * 1.5 = 24 vCPUs may be reserved
        (24, 1, 1.5, "no host has 1 vCPU free (largest free: a with 0 vCPUs)"),
        (60, 4, 4.0, "a"),
        (30, 4, 2.0, "no host has 4 vCPUs free (largest free: a with 2 vCPUs)"),
    ],
)
def test_vcpus_fit_within_capacity_times_overcommit(
    reserved: int, request_vcpus: int, cpu: float, expected: str
) -> None:
    found = where(
        vm(request_vcpus),
        [host("a")],
        usage={"a": used(vcpus=reserved)},
        overcommit=pl.Overcommit(cpu=cpu),
    )
    assert found == expected


@pytest.mark.parametrize(
    ("reserved_gib", "memory", "overcommit", "expected"),
    [
        (48, 16, 1.0, "a"),
        (52, 16, 1.0, "no host has 16 GiB free (largest free: a with 12 GiB)"),
        (64, 1, 1.0, "no host has 1 GiB free (largest free: a with 0 MiB)"),
        (60, 16, 1.5, "a"),  # memory overcommit only when configured
    ],
)
def test_memory_fits_within_capacity_not_overcommitted_by_default(
    reserved_gib: int, memory: int, overcommit: float, expected: str
) -> None:
    found = where(
        vm(2, memory),
        [host("a")],
        usage={"a": used(memory_gib=reserved_gib)},
        overcommit=pl.Overcommit(memory=overcommit),
    )
    assert found == expected


def test_disk_must_fit() -> None:
    found = where(vm(2, 4, disk_gib=100), [host("a", disk_gib=150)], usage={"a": used(disk_gib=60)})
    assert found == "no host has 100 GiB disk free (largest free: a with 90 GiB disk)"


def test_each_resource_fits_somewhere_but_not_together() -> None:
    hosts = [host("cpu-rich", vcpus=32, memory_gib=8), host("mem-rich", vcpus=2, memory_gib=64)]
    assert where(vm(8, 16), hosts) == (
        "no host has 8 vCPUs, 16 GiB memory and 20 GiB disk free at once"
    )


@pytest.mark.parametrize("cpu", [0.5, 0.99, 4.01, 8.0])
def test_overcommit_out_of_range_is_refused(cpu: float) -> None:
    with pytest.raises(ValueError, match="overcommit"):
        pl.Overcommit(cpu=cpu)


def test_negative_request_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        pl.Request(vcpus=-1, memory_mib=1)


def test_usage_of_sums_reservations_per_host() -> None:
    pairs = [
        ("a", used(2, 4, disk_gib=20)),
        ("b", used(4, 8, disk_gib=20)),
        ("a", used(2, 4, disk_gib=20)),
    ]
    assert pl.usage_of(pairs) == {"a": used(4, 8, disk_gib=40), "b": used(4, 8, disk_gib=20)}


@pytest.mark.parametrize(
    ("mib", "text"), [(512, "512 MiB"), (1024, "1 GiB"), (12 * GIB, "12 GiB"), (12800, "12.5 GiB")]
)
def test_sizes_in_words(mib: int, text: str) -> None:
    assert pl.gib(mib) == text


# --- architecture, driver, host state --------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "hosts", "expected"),
    [
        ((), [host("a", arch="arm64")], "a"),  # no architecture asked: any host
        (("x64",), [host("a", arch="arm64"), host("b")], "b"),
        (("ARM64",), [host("a"), host("b", arch="arm64")], "b"),
        (("aarch64",), [host("a", arch="arm64")], "a"),
        (("x64",), [host("a", arch="amd64")], "a"),
        (("arm64",), [host("a"), host("b")], "no arm64 host"),
        (
            ("arm64", "x64"),
            [host("a")],
            "the job asks for more than one architecture: arm64 and x64",
        ),
        (
            ("arm64",),
            [host("a", arch="arm64", state=CORDONED)],
            "every arm64 host is cordoned or draining",
        ),
    ],
)
def test_architecture_label_picks_the_host(
    labels: tuple[str, ...], hosts: list[pl.Host], expected: str
) -> None:
    assert where(vm(labels=labels), hosts) == expected


@pytest.mark.parametrize(
    ("driver", "hosts", "expected"),
    [
        (None, [host("a", drivers=frozenset())], "a"),
        ("firecracker", [host("a", drivers=frozenset({"local"})), host("b")], "b"),
        ("local", [host("a")], "no host has the local driver"),
    ],
)
def test_driver_must_be_on_the_host(
    driver: str | None, hosts: list[pl.Host], expected: str
) -> None:
    assert where(vm(driver=driver), hosts) == expected


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((UP,), "h0"),
        ((CORDONED, UP), "h1"),
        ((DRAINING, DOWN, UP), "h2"),
        ((CORDONED,), "every host is cordoned or draining"),
        ((CORDONED, DRAINING), "every host is cordoned or draining"),
        ((DOWN, DOWN), "every host is down"),
        ((CORDONED, DOWN), "every host is cordoned, draining or down"),
        ((), "no hosts are registered"),
    ],
)
def test_only_up_hosts_take_new_vms(states: tuple[HostState, ...], expected: str) -> None:
    hosts = [host(f"h{index}", state=state) for index, state in enumerate(states)]
    assert where(vm(), hosts) == expected


def test_a_cordoned_empty_host_loses_to_a_full_up_one() -> None:
    hosts = [host("empty", state=CORDONED), host("busy")]
    found = where(vm(2), hosts, usage={"busy": used(vcpus=16)})
    assert found == "no host has 2 vCPUs free (largest free: busy with 0 vCPUs)"


# --- spread and pack -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [(Strategy.SPREAD, "empty"), (Strategy.PACK, "half")],
)
def test_spread_takes_the_emptiest_pack_the_fullest_that_fits(
    strategy: Strategy, expected: str
) -> None:
    hosts = [host("empty"), host("half"), host("full")]
    usage = {"half": used(vcpus=8, memory_gib=32), "full": used(vcpus=16)}
    assert where(vm(2), hosts, usage=usage, strategy=strategy) == expected


def test_room_is_the_scarcest_resource() -> None:
    # "a" has more vCPUs free but its memory is nearly gone: spread prefers "b".
    hosts = [host("a"), host("b")]
    usage = {"a": used(vcpus=0, memory_gib=56), "b": used(vcpus=8, memory_gib=8)}
    assert where(vm(2, 4), hosts, usage=usage) == "b"


def test_ties_go_by_host_name() -> None:
    assert where(vm(), [host("b"), host("a")]) == "a"
    assert where(vm(), [host("b"), host("a")], strategy=Strategy.PACK) == "a"


def test_spread_batch_round_robins_over_equal_hosts() -> None:
    batch = pl.place_many([vm(2)] * 4, [host("a"), host("b")], usage={})
    assert [p.host for p in batch.placements] == ["a", "b", "a", "b"]
    assert batch.usage == {"a": used(4, 8, disk_gib=40), "b": used(4, 8, disk_gib=40)}


def test_pack_batch_fills_one_host_first() -> None:
    batch = pl.place_many([vm(8)] * 3, [host("a"), host("b")], usage={}, strategy=Strategy.PACK)
    assert [p.host for p in batch.placements] == ["a", "a", "b"]


def test_batch_never_overfills_a_host() -> None:
    batch = pl.place_many([vm(8), vm(8)], [host("a", vcpus=12)], usage={})
    assert [p.host for p in batch.placements] == ["a", None]
    assert batch.placements[1].reason == ("no host has 8 vCPUs free (largest free: a with 4 vCPUs)")


def test_batch_of_mixed_shapes_shares_the_hosts() -> None:
    requests = [vm(8, 4), vm(2, 40), vm(8, 4), vm(2, 40)]
    batch = pl.place_many(requests, [host("a", vcpus=16, memory_gib=64)], usage={})
    assert [p.host for p in batch.placements] == ["a", "a", None, None]
    assert batch.usage["a"] == used(10, 44, disk_gib=40)


def test_usage_of_hosts_not_listed_is_kept() -> None:
    batch = pl.place_many([vm()], [host("a")], usage={"gone": used(2)})
    assert batch.usage["gone"] == used(2)


# --- properties ------------------------------------------------------------------------------

hosts_st = st.lists(
    st.builds(
        pl.Host,
        name=st.sampled_from("abcdefgh"),
        arch=st.sampled_from(["x64", "arm64"]),
        vcpus=st.integers(0, 32),
        memory_mib=st.integers(0, 64).map(lambda g: g * GIB),
        disk_mib=st.integers(0, 200).map(lambda g: g * GIB),
        state=st.sampled_from(list(HostState)),
        drivers=st.sampled_from([frozenset({"firecracker"}), frozenset({"firecracker", "local"})]),
    ),
    max_size=6,
    unique_by=lambda h: h.name,
)
request_st = st.builds(
    pl.Request,
    vcpus=st.integers(0, 12),
    memory_mib=st.integers(0, 24).map(lambda g: g * GIB),
    disk_mib=st.integers(0, 60).map(lambda g: g * GIB),
    labels=st.sampled_from([(), ("x64",), ("arm64",), ("self-hosted", "ARM64")]),
    driver=st.sampled_from([None, "firecracker", "local"]),
)
usage_st = st.dictionaries(
    st.sampled_from("abcdefgh"),
    st.builds(
        Reservation,
        vcpus=st.integers(0, 40),
        memory_mib=st.integers(0, 80).map(lambda g: g * GIB),
        disk_mib=st.integers(0, 200).map(lambda g: g * GIB),
    ),
)
overcommit_st = st.builds(
    pl.Overcommit, cpu=st.sampled_from([1.0, 1.5, 2.0, 4.0]), memory=st.sampled_from([1.0, 1.25])
)


def takes(h: pl.Host, request: pl.Request) -> bool:
    arch_ok = not request.archs or request.archs == {h.arch}
    driver_ok = request.driver is None or request.driver in h.drivers
    return h.state is UP and arch_ok and driver_ok


def best(
    request: pl.Request,
    hosts: list[pl.Host],
    usage: dict[str, Reservation],
    *,
    strategy: Strategy,
    overcommit: pl.Overcommit,
) -> str | None:
    """The brute-force answer: every host that fits, scored by dominant share afterwards."""

    def share(h: pl.Host) -> float:
        cap, after = pl.capacity(h, overcommit), usage.get(h.name, pl.EMPTY).plus(request.size)
        pairs = zip(
            (after.vcpus, after.memory_mib, after.disk_mib),
            (cap.vcpus, cap.memory_mib, cap.disk_mib),
            strict=True,
        )
        return max((u / c if c else (0.0 if u <= 0 else float("inf"))) for u, c in pairs)

    room = [
        h
        for h in hosts
        if takes(h, request)
        and usage.get(h.name, pl.EMPTY).plus(request.size).within(pl.capacity(h, overcommit))
    ]
    if not room:
        return None
    sign = 1 if strategy is Strategy.SPREAD else -1
    return min(room, key=lambda h: (sign * share(h), h.name)).name


@settings(max_examples=250, deadline=None)
@given(
    hosts=hosts_st,
    usage=usage_st,
    requests=st.lists(request_st, max_size=25),
    strategy=st.sampled_from(list(Strategy)),
    overcommit=overcommit_st,
)
def test_place_many_is_one_optimal_place_after_another(
    hosts: list[pl.Host],
    usage: dict[str, Reservation],
    requests: list[pl.Request],
    strategy: Strategy,
    overcommit: pl.Overcommit,
) -> None:
    """Each VM goes exactly where the brute force would put it given the ones before it: so
    a request that fits somewhere is placed, nothing lands on a host that is not up, and no
    host ends over its capacity (unless it already was, and then it got nothing)."""
    batch = pl.place_many(requests, hosts, usage=usage, strategy=strategy, overcommit=overcommit)
    replay = dict(usage)
    by_name = {h.name: h for h in hosts}
    for request, found in zip(requests, batch.placements, strict=True):
        expected = best(request, hosts, replay, strategy=strategy, overcommit=overcommit)
        assert found.host == expected
        if found.host is None:
            assert found.reason
            continue
        assert by_name[found.host].state is UP
        replay[found.host] = replay.get(found.host, pl.EMPTY).plus(request.size)
    assert batch.usage == {**usage, **{h.name: replay.get(h.name, pl.EMPTY) for h in hosts}}
    for h in hosts:
        final, before = batch.usage[h.name], usage.get(h.name, pl.EMPTY)
        assert final == before or final.within(pl.capacity(h, overcommit))
        if h.state is not UP:
            assert final == before


@settings(max_examples=150, deadline=None)
@given(hosts=hosts_st, usage=usage_st, request=request_st)
def test_unplaced_means_no_host_had_room(
    hosts: list[pl.Host], usage: dict[str, Reservation], request: pl.Request
) -> None:
    found = pl.place(request, hosts, usage=usage)
    fits = [
        h
        for h in hosts
        if takes(h, request)
        and usage.get(h.name, pl.EMPTY).plus(request.size).within(pl.capacity(h, pl.Overcommit()))
    ]
    assert found.placed == bool(fits)
    assert (found.reason is None) == found.placed
