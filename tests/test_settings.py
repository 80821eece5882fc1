"""Settings refuse what Firecracker or GitHub would refuse later, naming the fix."""

from __future__ import annotations

import pydantic
import pytest

from blacksmith_mini import settings as settings_mod


def test_vcpus_above_firecrackers_limit_are_refused_with_the_fix() -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        settings_mod.PoolSettings(name="big", vcpus=33)
    text = str(refused.value)
    assert "Firecracker" in text and "at most 32" in text
    assert settings_mod.PoolSettings(name="max", vcpus=32).vcpus == 32


def test_restarts_leave_vms_running_by_default() -> None:
    assert settings_mod.ServerSettings().on_shutdown == "leave"


def test_status_lag_allowance_is_bounded() -> None:
    assert settings_mod.GitHubSettings().status_lag_allowance == 60.0
    with pytest.raises(pydantic.ValidationError):
        settings_mod.GitHubSettings(status_lag_allowance=-1)
