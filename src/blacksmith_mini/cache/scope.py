"""Which cache scopes a job reads and writes, and GitHub's lookup rule. Pure: no I/O.

What GitHub does (docs.github.com, "Dependency caching reference", sections "Restrictions for
accessing a cache" and "Cache key matching"):

- A run reads caches of its own ref, of its base branch (pull requests) and of the default
  branch; it writes only its own ref. A pull request's ref is ``refs/pull/N/merge``: what it
  saves can be restored by re-runs of that pull request only, never by the base branch or other
  pull requests. ``own_scopes`` encodes that, and refuses to let a pull request write the
  default branch's scope even if handed that ref.
- Matching is scope-major: in the run's own ref, first an exact hit for ``key`` and the
  ``version``, then a prefix match of ``key``, then each ``restore-keys`` entry in order (exact
  first, then by prefix); several prefix matches give the most recently created entry. With no
  hit in the own ref "the cache action retries the same steps" on the base branch, then the
  default branch. ``pick`` does exactly that; the version must always match exactly.
- ``version`` is the client's own: SHA-256 of ``paths | compression [| windows-only] | 1.0``
  (``@actions/cache`` ``internal/cacheUtils.ts`` ``getCacheVersion``); the service compares it
  as an opaque string. ``client_version`` recomputes it for tests and tools.
- ``ACTIONS_CACHE_MODE`` (``none|read|write|write-only``; unset or unknown means permissive,
  as the client's ``config.ts`` ``isCacheReadable``/``isCacheWritable`` say) narrows the
  token: ``read`` keeps reads and drops the write, ``write-only`` the reverse, ``none`` both.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

MODES = ("none", "read", "write", "write-only")
_PULL_REF = re.compile(r"^refs/pull/(\d+)/(merge|head)$")
MAX_KEY_LENGTH = 512
MAX_KEYS = 10


class Candidate(Protocol):
    """The fields of a committed entry the lookup rule looks at."""

    @property
    def scope(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def id(self) -> int: ...


C = TypeVar("C", bound=Candidate)


@dataclass(frozen=True)
class Scopes:
    reads: tuple[str, ...]
    write: str | None


def branch_ref(branch: str) -> str:
    """``main`` -> ``refs/heads/main``; a full ref is kept as it is."""
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


def is_pull_ref(ref: str) -> bool:
    return _PULL_REF.match(ref) is not None


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for item in items:
        if item and item not in seen:
            seen.append(item)
    return tuple(seen)


def own_scopes(*, ref: str, default_branch: str, base_ref: str | None = None) -> Scopes:
    """The scopes a job on ``ref`` reads (own, base, default, in that order) and writes.

    ``base_ref`` is ``GITHUB_BASE_REF`` (set for pull requests only, a branch name). A pull
    request writes its own ``refs/pull/N/merge`` scope and nothing else: if it somehow runs on
    the default branch's ref it gets no write scope at all.
    """
    own = branch_ref(ref)
    default = branch_ref(default_branch)
    base = branch_ref(base_ref) if base_ref else None
    reads = _unique([own, base or "", default])
    write: str | None = own
    if base is not None and not is_pull_ref(own):
        write = None  # a pull-request run never writes a branch's scope
    return Scopes(reads=reads, write=write)


def apply_mode(scopes: Scopes, mode: str | None) -> Scopes:
    """``scopes`` narrowed by ``ACTIONS_CACHE_MODE``; unset or unknown modes change nothing."""
    normalised = (mode or "").strip().lower()
    if normalised not in MODES or normalised == "write":
        return scopes
    if normalised == "read":
        return Scopes(reads=scopes.reads, write=None)
    if normalised == "write-only":
        return Scopes(reads=(), write=scopes.write)
    return Scopes(reads=(), write=None)


def valid_key(key: str) -> bool:
    """The client's own rule (``cache.ts`` ``checkKey``): at most 512 characters, no comma."""
    return 0 < len(key) <= MAX_KEY_LENGTH and "," not in key


def _newest(found: Sequence[C]) -> C:
    return max(found, key=lambda entry: (entry.created_at, entry.id))


def pick(
    candidates: Sequence[C],
    *,
    key: str,
    restore_keys: Sequence[str],
    version: str,
    reads: Sequence[str],
) -> C | None:
    """The entry GitHub would restore, or None: scope by scope, key then restore-keys."""
    probes = [key, *restore_keys]
    for scope in reads:
        pool = [c for c in candidates if c.scope == scope and c.version == version]
        if not pool:
            continue
        for probe in probes:
            exact = [c for c in pool if c.key == probe]
            if exact:
                return _newest(exact)
            prefixed = [c for c in pool if c.key.startswith(probe)]
            if prefixed:
                return _newest(prefixed)
    return None


def client_version(
    paths: Sequence[str], compression: str | None, *, windows_only: bool = False
) -> str:
    """The ``version`` ``@actions/cache`` sends for these paths and compression method."""
    components = list(paths)
    if compression:
        components.append(compression)
    if windows_only:
        components.append("windows-only")
    components.append("1.0")
    return hashlib.sha256("|".join(components).encode()).hexdigest()
