"""The admin API's answers as Pydantic models, so the OpenAPI document (and the dashboard's
generated types) says exactly what ``/api/cache`` sends."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CacheEntryOut(BaseModel):
    """One committed entry, shaped like GitHub's ``actions/caches`` item plus two fields."""

    id: int
    repository: str
    ref: str = Field(description="The scope it was saved in, e.g. refs/heads/main.")
    key: str
    version: str
    size_in_bytes: int
    sha256: str | None
    created_at: str
    last_accessed_at: str


class CacheEntriesResponse(BaseModel):
    total_count: int
    entries: list[CacheEntryOut]


class CacheUploadOut(BaseModel):
    id: int
    repository: str
    ref: str
    key: str
    version: str
    received_bytes: int
    sealed: bool
    reserved_at: str


class CacheUploadsResponse(BaseModel):
    total_count: int
    uploads: list[CacheUploadOut]


class CacheRepositoryCounters(BaseModel):
    """What one repository's jobs did with the cache since the service started."""

    hits: int
    restore_key_hits: int
    misses: int
    bytes_in: int
    bytes_out: int
    saves: int
    conflicts: int
    evictions: int
    evicted_bytes: int
    corrupt: int
    denied: int
    hit_rate: float | None = Field(description="Hits over lookups; null before the first.")


class CacheLimitsOut(BaseModel):
    repository_bytes: int
    host_bytes: int


class CacheMetricsResponse(BaseModel):
    enabled: bool = Field(default=True, description="False: this server runs no cache.")
    detail: str | None = Field(default=None, description="With the cache off: how to turn it on.")
    repositories: dict[str, CacheRepositoryCounters]
    usage_bytes: dict[str, int] = Field(description="Committed bytes per repository.")
    entry_counts: dict[str, int] = Field(description="Committed entries per repository.")
    host_bytes: int
    limits: CacheLimitsOut


class CacheScrubResponse(BaseModel):
    checked: int
    corrupt: list[CacheEntryOut]
    expired_uploads: list[int]


def metrics_off(detail: str) -> CacheMetricsResponse:
    """The metrics answer of a server without a cache (a 200: the dashboard asks every 30 s)."""
    return CacheMetricsResponse(
        enabled=False,
        detail=detail,
        repositories={},
        usage_bytes={},
        entry_counts={},
        host_bytes=0,
        limits=CacheLimitsOut(repository_bytes=0, host_bytes=0),
    )
