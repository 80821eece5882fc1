"""A Firecracker VM's host processes (supervisor, firecracker) never hold a GitHub token or
our settings: the control plane's environment is filtered before they start (they inherited
all of it, GITHUB_TOKEN included, before)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver

pytestmark = pytest.mark.anyio


async def test_vm_processes_hold_no_github_token(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "ghp_" + os.urandom(12).hex()
    monkeypatch.setenv("GITHUB_TOKEN", token)
    monkeypatch.setenv("BLACKSMITH_GITHUB__WEBHOOK_SECRET", "s3cret-value")
    monkeypatch.setenv("MY_API_KEY", "another-secret")
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")  # an ordinary variable still gets through
    obs = await fc_driver.start(make_spec(7))
    record = fc_driver.records[7]
    pids = [p for p in (record.supervisor_pid, obs.pid) if p]
    assert len(pids) == 2
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert token.encode() not in environ and b"GITHUB_TOKEN" not in environ
        assert b"s3cret-value" not in environ and b"BLACKSMITH_" not in environ
        assert b"another-secret" not in environ
        assert b"FAKE_FC_NO_GUEST=1" in environ
