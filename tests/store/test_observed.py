"""Observations sent as changes end where sending them whole would (hypothesis properties).

An agent's report sends what changed against the version the control plane holds
(``wire.changes``); the control plane applies it to what is stored (``observed.apply``). For
any sequence of a host's observations the stored ones equal the agent's after every report,
and whether a change wakes the loop (``delta_is_material``, which looks only at what the
change names) is what comparing the whole before and after says (``material_change``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from blacksmith_mini.store import observed
from blacksmith_mini.vm.remote import wire

FLAGS = ("alive", "runner_online", "job_started", "job_finished")
observation = st.fixed_dictionaries(
    {name: st.booleans() for name in FLAGS}
    | {
        "exit_code": st.none() | st.integers(-1, 2),
        "detail": st.none() | st.sampled_from(["booting", "warm"]),
        "started_at": st.sampled_from([1.0, 2.0]),
    }
)
host = st.dictionaries(st.integers(1, 8), observation, max_size=6)


def stored_form(seen: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(vm_id): {"vm_id": vm_id, **item} for vm_id, item in seen.items()}


@settings(max_examples=300, deadline=None)
@given(st.lists(host, min_size=1, max_size=8))
def test_changes_applied_in_turn_end_where_the_whole_would(steps: list[dict[int, Any]]) -> None:
    stored: dict[str, Any] = {}
    held: dict[int, dict[str, Any]] = {}
    for step in steps:
        now = {vm_id: {"vm_id": vm_id, **item} for vm_id, item in step.items()}
        changed, gone = wire.changes(held, now)
        delta = observed.Delta(
            base="v", changed={str(c["vm_id"]): c for c in changed}, gone=[str(g) for g in gone]
        )
        after = observed.apply(stored, delta)
        assert after == stored_form(step)
        assert observed.delta_is_material(stored, delta) == observed.material_change(stored, after)
        stored, held = after, now


def test_a_change_leaves_what_it_was_applied_to_as_it_was() -> None:
    stored = {"1": {"alive": True}, "2": {"alive": True}}
    delta = observed.Delta(base="v", changed={"1": {"alive": False}}, gone=["2"])
    assert observed.apply(stored, delta) == {"1": {"alive": False}}
    assert stored == {"1": {"alive": True}, "2": {"alive": True}}


def test_only_what_the_planner_reads_is_material() -> None:
    stored = {"1": {"alive": True, "detail": None}}
    clock_only = observed.Delta(base="v", changed={"1": {"alive": True, "detail": "x"}}, gone=[])
    assert not observed.delta_is_material(stored, clock_only)
    assert observed.delta_is_material(
        stored, observed.Delta(base="v", changed={"1": {"alive": False}}, gone=[])
    )
    assert observed.delta_is_material(stored, observed.Delta(base="v", changed={}, gone=["1"]))
    assert not observed.delta_is_material(stored, observed.Delta(base="v", changed={}, gone=["9"]))


def test_a_digest_names_one_encoding() -> None:
    one = observed.encode({"1": {"alive": True}})
    assert observed.digest(one) == observed.digest(bytes(one))
    assert observed.digest(one) != observed.digest(observed.encode({"1": {"alive": False}}))


@settings(max_examples=300, deadline=None)
@given(st.lists(host, min_size=1, max_size=8))
def test_encoding_reusing_the_last_one_is_the_same_bytes(steps: list[dict[int, Any]]) -> None:
    fragments: observed.Fragments = {}
    stored: dict[str, Any] = {}
    for step in steps:
        now = stored_form(step)
        # As a report's change leaves them: the VMs it does not name are the same objects.
        after = {key: stored[key] if stored.get(key) == seen else seen for key, seen in now.items()}
        assert observed.encode(after, reusing=fragments) == observed.encode(after)
        assert fragments.keys() == after.keys()
        stored = after


def test_a_change_encodes_only_the_vms_it_names(monkeypatch: Any) -> None:
    stored = {str(vm_id): {"vm_id": vm_id, "alive": True} for vm_id in range(100)}
    fragments: observed.Fragments = {}
    observed.encode(stored, reusing=fragments)
    encoded: list[object] = []
    real = observed.pydantic_core.to_json

    def counting(value: Any) -> bytes:
        encoded.append(value)
        return real(value)

    monkeypatch.setattr(observed.pydantic_core, "to_json", counting)
    delta = observed.Delta(base="v", changed={"7": {"vm_id": 7, "alive": False}}, gone=["9"])
    after = observed.apply(stored, delta)
    found = observed.encode(after, reusing=fragments)
    assert encoded == [{"7": {"vm_id": 7, "alive": False}}]
    monkeypatch.undo()
    assert found == observed.encode(after)
