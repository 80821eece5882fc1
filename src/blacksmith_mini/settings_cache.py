"""The ``[cache]`` settings: the co-located Actions cache the control plane serves to its VMs."""

from __future__ import annotations

import pathlib

from pydantic import BaseModel, Field

GIB = 1 << 30
GITHUB_RESULTS_URL = "https://results-receiver.actions.githubusercontent.com/"


class CacheSettings(BaseModel):
    """Where the cache listens, what it may hold, and where a VM falls back to."""

    enabled: bool | None = Field(
        default=None,
        description="Serve the Actions cache to VMs. Unset: on with the firecracker driver "
        "(the only one whose guests' runner is redirected to it), off otherwise.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address the VM-facing listener binds. With firecracker VMs set it to an "
        "address they reach (e.g. 0.0.0.0: every request needs a VM's token, and the VM "
        "firewall lets only this port through to the host).",
    )
    port: int = Field(
        default=8010, ge=0, le=65535, description="Its port; 0 picks a free one (tests)."
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL VMs reach the cache at; '{host_ip}' is replaced by the VM's own "
        "gateway address. Unset: http://{host_ip}:<port>/ for firecracker, "
        "http://<host>:<port>/ otherwise.",
    )
    directory: pathlib.Path | None = Field(
        default=None, description="Where entries live; unset: <data_dir>/cache."
    )
    repository_bytes: int = Field(
        default=10 * GIB, ge=1 << 20, description="Cap per repository (LRU eviction beyond)."
    )
    host_bytes: int = Field(
        default=100 * GIB, ge=1 << 20, description="Cap for the whole host (LRU eviction beyond)."
    )
    token_ttl_seconds: int = Field(
        default=8 * 3600, ge=60, description="How long a VM's cache token is valid."
    )
    link_wait_seconds: float = Field(
        default=20.0,
        ge=0,
        le=300,
        description="How long a cache call from a VM whose job is not linked yet waits for "
        "the link before it is refused (the guest then goes on to GitHub's cache).",
    )
    scrub_interval_seconds: float | None = Field(
        default=6 * 3600.0, gt=0, description="Seconds between SHA-256 scrubs; unset: none."
    )
    fallback_url: str = Field(
        default=GITHUB_RESULTS_URL,
        description="GitHub's results service, where a VM's v2 cache calls go when ours is "
        "down (GitHub Enterprise Server: its own results URL).",
    )

    def is_on(self, driver: str) -> bool:
        return self.enabled if self.enabled is not None else driver == "firecracker"
