"""Boot data handed to the guest through MMDS V2, and its non-secret remainder.

Layout: ``{"latest": {"meta-data": {"blacksmith": {...}}}}``; the guest agent reads
``/latest/meta-data/blacksmith`` with a session token. The JIT runner config is the only
credential in it, and it is removed (``PUT /mmds`` with :func:`public_remainder`) as soon as the
agent acknowledges on the console that it has read it. A GitHub token must never get here:
:func:`check_no_github_token` refuses anything that looks like one.

The guest's identity comes from here too: ``hostname`` (:func:`guest_hostname` of the runner
name) and ``dns_servers`` (the kernel's ``ip=`` argument only fills ``/proc/net/pnp``; the agent
writes ``/etc/resolv.conf`` from these).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from blacksmith_mini.vm import driver

KEY = "blacksmith"
SECRET_FIELDS = ("runner_jit_config", "cache")
CACHE_TOKEN_PREFIX = "bmc1."  # noqa: S105 - a prefix of our per-VM cache token, not a secret
# GitHub token prefixes: personal, OAuth, user-to-server, server-to-server, refresh, fine-grained.
_TOKEN = re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")
_NOT_HOSTNAME = re.compile(r"[^a-z0-9-]+")
HOSTNAME_MAX = 63


def guest_hostname(name: str, *, vm_id: int | None = None) -> str:
    """A valid hostname (RFC 1123 label: ``[a-z0-9-]``, no leading/trailing ``-``, <= 63 chars)
    derived from the runner name, e.g. ``bm-12-x7k2`` -> ``bm-12-x7k2``."""
    label = _NOT_HOSTNAME.sub("-", name.lower()).strip("-")[:HOSTNAME_MAX].strip("-")
    if not label:
        label = f"bm-vm-{vm_id}" if vm_id is not None else "bm-vm"
    return label


def boot_data(
    spec: driver.VmSpec,
    *,
    instance_id: str,
    ssh_public_key: str | None,
    keep_on_failure_seconds: float,
    dns_servers: Sequence[str],
    hostname: str | None = None,
    host_ip: str | None = None,
) -> dict[str, Any]:
    """The whole MMDS store for a VM being started (``hostname`` defaults to
    :func:`guest_hostname` of the runner name). The spec's ``cache`` goes in as ``cache``
    with ``{host_ip}`` in its URL replaced by the VM's gateway (``host_ip``)."""
    keys = [k for k in (spec.ssh_public_key, ssh_public_key) if k]
    data = {
        "vm_id": spec.vm_id,
        "name": spec.name,
        "hostname": guest_hostname(hostname or spec.name, vm_id=spec.vm_id),
        "dns_servers": [str(server) for server in dns_servers],
        "instance_id": instance_id,
        "pool": spec.pool,
        "labels": list(spec.labels),
        "ssh_authorized_keys": [k.strip() for k in dict.fromkeys(keys)],
        "keep_on_failure_seconds": keep_on_failure_seconds,
        "runner_jit_config": spec.jit_config,
    }
    if spec.cache:
        data["cache"] = {
            name: value.replace("{host_ip}", host_ip or "127.0.0.1")
            for name, value in spec.cache.items()
        }
    store = {"latest": {"meta-data": {KEY: data}}}
    check_no_github_token(store)
    return store


def public_remainder(store: dict[str, Any]) -> dict[str, Any]:
    """The store without its secret fields (what stays readable after the ack)."""
    remainder = copy.deepcopy(store)
    data = remainder.get("latest", {}).get("meta-data", {}).get(KEY, {})
    for field in SECRET_FIELDS:
        data.pop(field, None)
    return remainder


def check_no_github_token(value: object, *, parent: str = "") -> None:
    """Raise ValueError if any string in ``value`` (recursively) looks like a GitHub token or
    sits under a key naming a token; the one exception is ``cache.token``, which must be our
    own cache token (``bmc1.``)."""
    if isinstance(value, str):
        if _TOKEN.search(value):
            raise ValueError("refusing to put a GitHub token into MMDS")
    elif isinstance(value, dict):
        for key, item in value.items():
            ours = parent == "cache" and key == "token"
            if ours and not (isinstance(item, str) and item.startswith(CACHE_TOKEN_PREFIX)):
                raise ValueError("cache.token in MMDS must be a Blacksmith cache token (bmc1.)")
            if "token" in str(key).lower() and not ours:
                raise ValueError(f"refusing to put a field named {key!r} into MMDS")
            check_no_github_token(item, parent=str(key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_no_github_token(item, parent=parent)
