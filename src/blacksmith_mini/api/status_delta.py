"""Per-entity deltas between two renderings of ``GET /api/status`` (pure: JSON values in and out).

A delta takes a client holding the status of version ``from`` to the status of version ``to``
(the versions are ``snapshot_version``)::

    {"from": 41, "to": 42,
     "fields": {"timestamp": "2025-01-01T00:00:03Z", "snapshot_version": 42, "loop": {...}},
     "collections": {
       "vms": {"key": "vm_id",
               "upsert": [{"vm_id": 7, "status": "busy", "job_id": 12}, {...a new VM...}],
               "remove": [3],
               "order": [1, 2, 7, 9]}}}

- ``fields``: top-level members whose value changed, each replaced whole (objects such as
  ``metrics``, ``github`` or ``loop`` included: they are small).
- ``collections``: the lists of entities with an identity (``COLLECTIONS``: ``vms`` by ``vm_id``,
  the three job lists by ``id``, ``pools`` by ``name``), only those that changed. Applying one:
  drop the ``remove`` keys; merge each ``upsert`` into the entity with its key, member by member
  (a patch holds the key and the members that changed; each member is replaced whole), or append
  it when the key is new (then it is the whole entity); finally, when ``order`` is there, put the
  entities in that order of keys (only sent when removals and appends alone do not give it).
- A list whose items have no usable identity (duplicate keys, members that come or go) is sent
  whole in ``fields`` instead.

``apply(status, diff(status, new, ...)) == new`` for any two statuses (tests/api prove it on
tables and on random renders); members are never dropped, as every status has them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonObject = dict[str, Any]

COLLECTIONS: Mapping[str, str] = {
    "vms": "vm_id",
    "queued_jobs": "id",
    "running_jobs": "id",
    "unmatched_jobs": "id",
    "pools": "name",
}


class StaleDelta(ValueError):
    """The delta does not start from the version the status is at."""


def diff(old: JsonObject, new: JsonObject, *, from_version: int, to_version: int) -> JsonObject:
    """The delta from ``old`` (at ``from_version``) to ``new`` (at ``to_version``)."""
    fields: JsonObject = {}
    collections: JsonObject = {}
    for name, value in new.items():
        before = old.get(name)
        if name in old and before == value:
            continue
        key = COLLECTIONS.get(name)
        change = None
        if key is not None and isinstance(before, list) and isinstance(value, list):
            change = _collection(before, value, key=key)
        if change is None:
            fields[name] = value
        else:
            collections[name] = change
    return {"from": from_version, "to": to_version, "fields": fields, "collections": collections}


def is_empty(delta: JsonObject) -> bool:
    """Nothing but the versions: the two statuses were equal."""
    return not delta["fields"] and not delta["collections"]


def apply(status: JsonObject, delta: JsonObject) -> JsonObject:
    """The status ``delta`` leads to from ``status`` (which is left as it is).

    Raises ``StaleDelta`` when ``status`` is not at the delta's ``from`` version.
    """
    if status.get("snapshot_version") != delta["from"]:
        raise StaleDelta(f"delta from {delta['from']}, status at {status.get('snapshot_version')}")
    result = dict(status)
    for name, change in delta["collections"].items():
        result[name] = _apply_collection(result[name], change)
    result.update(delta["fields"])
    return result


def _collection(old: list[Any], new: list[Any], *, key: str) -> JsonObject | None:
    """The change of one keyed list, or None when its items cannot be told apart by ``key``."""
    old_by_key = _by_key(old, key)
    new_by_key = _by_key(new, key)
    if old_by_key is None or new_by_key is None:
        return None
    upsert: list[JsonObject] = []
    for identity, item in new_by_key.items():
        before = old_by_key.get(identity)
        if before is None:
            upsert.append(item)
        elif before is not item and before != item:  # renders share unchanged entities
            if before.keys() != item.keys():
                return None  # a patch cannot remove a member
            patch = {key: identity}
            patch.update((member, v) for member, v in item.items() if before[member] != v)
            upsert.append(patch)
    remove = [identity for identity in old_by_key if identity not in new_by_key]
    change: JsonObject = {"key": key}
    if upsert:
        change["upsert"] = upsert
    if remove:
        change["remove"] = remove
    gone = set(remove)
    kept = [identity for identity in old_by_key if identity not in gone]
    appended = [identity for identity in new_by_key if identity not in old_by_key]
    order = list(new_by_key)
    if kept + appended != order:
        change["order"] = order
    return change


def _by_key(items: list[Any], key: str) -> dict[Any, JsonObject] | None:
    """The items by their key, in order; None unless each is an object with a distinct key."""
    found: dict[Any, JsonObject] = {}
    for item in items:
        identity = item.get(key) if type(item) is dict else None
        if (type(identity) is not int and type(identity) is not str) or identity in found:
            return None  # JSON values: plain types only (so no bool either)
        found[identity] = item
    return found


def _apply_collection(items: list[JsonObject], change: JsonObject) -> list[JsonObject]:
    key = change["key"]
    gone = set(change.get("remove", ()))
    result = [item for item in items if item[key] not in gone]
    position = {item[key]: index for index, item in enumerate(result)}
    for patch in change.get("upsert", ()):
        index = position.get(patch[key])
        if index is None:
            position[patch[key]] = len(result)
            result.append(patch)
        else:
            result[index] = {**result[index], **patch}
    if "order" in change:
        by_key = {item[key]: item for item in result}
        result = [by_key[identity] for identity in change["order"]]
    return result
