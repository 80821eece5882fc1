"""docs/CONFIGURATION.md is generated from the settings model, covers every key, is current,
and never prints a secret."""

from __future__ import annotations

import os
import pathlib
import typing

import pytest
from pydantic import BaseModel, Field, SecretStr

from blacksmith_mini import config_reference as ref
from blacksmith_mini import settings as settings_mod
from blacksmith_mini.agent.settings import AgentSettings

REPO = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = REPO / "docs" / "CONFIGURATION.md"
SEED_NAMES = {
    "github.token": "GITHUB_TOKEN",
    "github.owner": "REPO_OWNER",
    "github.repositories": "REPO_NAME",
    "github.poll_interval": "POLL_INTERVAL",
    "vm.max_vms": "MAX_VMS",
    "vm.ssh_key_path": "SSH_KEY_PATH",
}


def leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every leaf field's dotted path, by a walk of ``model_fields`` of our own."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        args = typing.get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= leaf_keys(annotation, f"{prefix}{name}.")
        elif args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            found |= leaf_keys(args[0], f"{prefix}{name}[].")
        else:
            found.add(prefix + name)
    return found


def rows(*, agent: bool = False) -> dict[str, str]:
    """The rendered table rows, by key: the control plane's, or (``agent``) the host agent's,
    which come after the first "The host agent" heading."""
    text = ref.render()
    head, _, tail = text.partition("\n## The host agent")
    part = tail if agent else head
    return {line.split("`")[1]: line for line in part.splitlines() if line.startswith("| `")}


def test_every_field_of_the_model_is_documented_once() -> None:
    expected = leaf_keys(settings_mod.Settings)
    keys = [entry.key for entry in ref.walk(settings_mod.Settings)]
    assert len(keys) == len(set(keys))
    assert set(keys) == expected
    assert set(rows()) == expected
    assert len(expected) > 90  # the walk went down into every table


def test_the_host_agents_settings_have_their_own_names_and_descriptions() -> None:
    expected = leaf_keys(AgentSettings)
    found = rows(agent=True)
    assert set(found) == expected
    assert "`BLACKSMITH_AGENT_FIRECRACKER__KERNEL_PATH`" in found["firecracker.kernel_path"]
    assert "`BLACKSMITH_AGENT_TOKEN_FILE`" in found["token_file"]
    undescribed = [key for key, row in found.items() if row.rstrip().endswith("| — |")]
    assert undescribed == []
    assert not any("database" in key or "github" in key for key in expected)


def test_the_committed_reference_is_current() -> None:
    problem = ref.check(COMMITTED)
    assert problem is None, problem


def test_secrets_never_show_a_value() -> None:
    secrets = [entry for entry in ref.walk(settings_mod.Settings) if entry.secret]
    assert {entry.key for entry in secrets} >= {
        "github.token",
        "github.webhook_secret",
        "server.api_token",
        "server.admin_token",
    }
    for entry in secrets:
        assert entry.default in (ref.UNSET, ref.HIDDEN)
        assert "Secret: never shown" in entry.description

    class WithDefault(BaseModel):
        password: SecretStr = SecretStr("hunter2-secret")
        maybe: SecretStr | None = Field(default=SecretStr("other-secret"))

    text = ref.render(WithDefault)
    assert "hunter2" not in text and "other-secret" not in text
    assert text.count(ref.HIDDEN) == 2


def test_environment_names_and_the_seeds_legacy_names() -> None:
    found = rows()
    assert "`BLACKSMITH_VM__FIRECRACKER__BOOT_TIMEOUT`" in found["vm.firecracker.boot_timeout"]
    assert "`BLACKSMITH_VM__FIRECRACKER__JAILER__NETNS`" in found["vm.firecracker.jailer.netns"]
    assert ref.legacy_names() == SEED_NAMES
    for key, name in SEED_NAMES.items():
        assert f"`{name}` (seed)" in found[key]
    assert "(seed)" not in found["github.api_url"]


def test_the_documented_environment_names_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLACKSMITH_VM__FIRECRACKER__BOOT_TIMEOUT", "7")
    monkeypatch.setenv("BLACKSMITH_VM__FIRECRACKER__JAILER__NETNS", "false")
    monkeypatch.setenv("BLACKSMITH_SERVER__PORT", "9001")
    loaded = settings_mod.load()
    assert loaded.vm.firecracker.boot_timeout == 7.0
    assert loaded.vm.firecracker.jailer.netns is False
    assert loaded.server.port == 9001


def test_probing_the_seed_names_leaves_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_keep")
    monkeypatch.delenv("MAX_VMS", raising=False)
    ref.legacy_names()
    assert os.environ["GITHUB_TOKEN"] == "ghp_keep"
    assert "MAX_VMS" not in os.environ


def test_types_defaults_and_bounds() -> None:
    found = rows()
    assert "| integer | `8000` |" in found["server.port"]
    assert ">= 0, <= 65535" in found["server.port"]
    assert "> 0" in found["vm.firecracker.boot_timeout"]
    assert '`"leave"`' in found["server.on_shutdown"]
    assert 'one of "drain", "leave"' in found["server.on_shutdown"]
    assert "| path | unset |" in found["server.dashboard_dir"]
    assert "array of string" in found["vm.firecracker.dns_servers"]


def test_a_list_of_tables_is_documented_once_with_its_default() -> None:
    text = ref.render()
    found = rows()
    assert "| — |" in found["pools[].name"]  # no per-item environment name
    assert "`BLACKSMITH_POOLS`" in text
    assert '[[pools]]\nname = "large"' in text
    assert "pools.0" not in text and "pools[0]" not in text


def test_notes_only_fill_in_missing_descriptions() -> None:
    fields = {entry.key: entry for entry in ref.walk(settings_mod.Settings)}
    for key in ref.NOTES:
        assert key in fields, f"NOTES has {key!r}, which is no setting"

    def model_description(key: str) -> str | None:
        model: type[BaseModel] = settings_mod.Settings
        *parents, last = key.replace("[]", "").split(".")
        for part in parents:
            annotation = model.model_fields[part].annotation
            args = typing.get_args(annotation)
            model = typing.cast(type[BaseModel], args[0] if args else annotation)
        return model.model_fields[last].description

    shadowing = [key for key in ref.NOTES if model_description(key)]
    assert shadowing == [], f"the model describes these now; drop their NOTES: {shadowing}"


def test_check_mode_fails_on_a_stale_file(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "CONFIGURATION.md"
    assert ref.main(["--check", "--output", str(target)]) == 1  # missing
    assert ref.main(["--output", str(target)]) == 0
    assert ref.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace("boot_timeout", "boot_timeot"))
    problem = ref.check(target)
    assert problem is not None and "is stale" in problem and ref.REGENERATE in problem
    assert ref.main(["--check", "--output", str(target)]) == 1
