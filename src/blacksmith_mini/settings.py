"""Settings: defaults < TOML file < the seed's environment names < ``BLACKSMITH_*`` < CLI flags.

Nested fields use ``__`` in environment names (``BLACKSMITH_VM__MAX_VMS=8``). The seed's names
(``GITHUB_TOKEN``, ``REPO_OWNER``, ``REPO_NAME``, ``MAX_VMS``, ``POLL_INTERVAL``,
``SSH_KEY_PATH``) keep working. Secrets are ``SecretStr``: they never print.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from blacksmith_mini.domain import labels as domain_labels
from blacksmith_mini.domain import model
from blacksmith_mini.settings_cache import CacheSettings as CacheSettings
from blacksmith_mini.settings_hosts import HostsSettings as HostsSettings
from blacksmith_mini.settings_seed_env import SeedEnvSource as SeedEnvSource
from blacksmith_mini.settings_simulator import SimulatorSettings as SimulatorSettings
from blacksmith_mini.settings_usage import UsageSettings as UsageSettings
from blacksmith_mini.settings_vm import TimeoutSettings as TimeoutSettings
from blacksmith_mini.settings_vm import VmSettings as VmSettings

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")


MAX_VCPUS = 32


class ConfigError(ValueError):
    """A setting is missing or wrong. The message says which and how to fix it."""


class PoolSettings(BaseModel):
    name: str = "default"
    labels: list[str] = Field(default_factory=lambda: ["self-hosted", "linux", "x64"])
    vcpus: int = Field(default=2, ge=1, description="1-32 (Firecracker v1.16.1's vcpu_count).")
    memory_mib: int = Field(default=4096, ge=128, le=1024 * 1024)
    min_idle: int = Field(default=0, ge=0)
    max_vms: int = Field(default=10, ge=0)
    max_idle: int | None = Field(
        default=None,
        ge=0,
        description="Above min_idle: the idle VMs kept follow demand (the 90th percentile of "
        "jobs arriving per refill time over the last 15 min and the same hour last week), "
        "between min_idle and max_idle. Unset: exactly min_idle.",
    )
    rerun_infrastructure_failures: bool = Field(
        default=False,
        description="Re-run, once, a job that failed because our infrastructure did (host "
        "lost, VM crashed, boot failure after the job was assigned); needs Actions: write.",
    )

    @field_validator("vcpus")
    @classmethod
    def _vcpus(cls, value: int) -> int:
        if value > MAX_VCPUS:
            raise ValueError(
                f"vcpus = {value} is more than Firecracker allows (vcpu_count 1-{MAX_VCPUS} in "
                f"v1.16.1): set vcpus to at most {MAX_VCPUS}"
            )
        return value

    @model_validator(mode="after")
    def _idle_bounds(self) -> PoolSettings:
        if self.max_idle is not None and self.max_idle < self.min_idle:
            raise ValueError(
                f"pool {self.name!r}: max_idle = {self.max_idle} is below min_idle = "
                f"{self.min_idle}: raise max_idle, or leave it unset for a fixed min_idle"
            )
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                f"pool name {value!r} must be lower-case letters, digits, '-' or '_' (max 31)"
            )
        return value

    def to_domain(self) -> model.Pool:
        return model.Pool(
            name=self.name,
            labels=domain_labels.normalize([*self.labels, "self-hosted"]),
            vcpus=self.vcpus,
            memory_mib=self.memory_mib,
            min_idle=self.min_idle,
            max_vms=self.max_vms,
            max_idle=self.max_idle,
            rerun_infrastructure_failures=self.rerun_infrastructure_failures,
        )


class GitHubSettings(BaseModel):
    token: SecretStr | None = None
    token_file: pathlib.Path | None = None
    app_id: str | None = Field(default=None, description="GitHub App id (or use client_id).")
    client_id: str | None = Field(default=None, description="GitHub App client id (preferred).")
    private_key_file: pathlib.Path | None = None
    installation_id: int | None = Field(default=None, description="Looked up when unset.")
    owner: str | None = None
    repositories: list[str] = Field(default_factory=list)
    organization: str | None = Field(
        default=None, description="Serve a whole organization with org-level runners."
    )
    runner_group: str | None = Field(
        default=None, description="Organization runner group, by name (looked up at start)."
    )
    api_url: str = "https://api.github.com"
    runner_group_id: int = 1
    runner_prefix: str = "bm"
    poll_interval: float = Field(
        default=5.0, ge=0.2, description="Seconds between REST polls without webhooks."
    )
    poll_interval_with_webhooks: float = Field(
        default=30.0, ge=0.2, description="Seconds between REST polls when webhooks are on."
    )
    webhook_secret: SecretStr | None = None
    webhook_secret_file: pathlib.Path | None = None
    request_timeout: float = Field(default=15.0, gt=0)
    status_lag_allowance: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="Seconds GitHub may take to show that a runner took a job (its busy flag "
        "and job status lag); a VM whose runner took an unnamed job covers one queued job "
        "that long.",
    )

    def uses_app(self) -> bool:
        return bool((self.app_id or self.client_id) and self.private_key_file)

    def private_key(self) -> str:
        assert self.private_key_file is not None
        try:
            return self.private_key_file.read_text()
        except OSError as exc:
            raise ConfigError(
                f"github.private_key_file {self.private_key_file} cannot be read "
                f"({exc.strerror}); download the App's private key (.pem) and point to it"
            ) from exc

    def resolved_webhook_secret(self) -> str | None:
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        if self.webhook_secret_file is not None:
            try:
                return self.webhook_secret_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"github.webhook_secret_file {self.webhook_secret_file} cannot be read "
                    f"({exc.strerror})"
                ) from exc
        return None

    @field_validator("runner_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", value):
            raise ValueError("runner_prefix must be 1-10 lower-case letters or digits")
        return value

    def resolved_token(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"github.token_file {self.token_file} cannot be read ({exc.strerror}); "
                    "fix the path or set GITHUB_TOKEN instead"
                ) from exc
        return None

    def full_repositories(self) -> list[str]:
        """Repositories as ``owner/name``; bare names take ``owner``."""
        found = []
        for repo in self.repositories:
            if "/" in repo:
                found.append(repo)
            elif self.owner:
                found.append(f"{self.owner}/{repo}")
            else:
                raise ConfigError(
                    f"repository {repo!r} has no owner: write it as owner/{repo} "
                    "or set github.owner (REPO_OWNER)"
                )
        return found


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    cors_origins: list[str] = Field(default_factory=lambda: ["http://localhost:3000"])
    api_token: SecretStr | None = Field(default=None, description="Read access to /api.")
    api_token_file: pathlib.Path | None = None
    admin_token: SecretStr | None = Field(default=None, description="Operator actions.")
    admin_token_file: pathlib.Path | None = None
    dashboard_dir: pathlib.Path | None = None
    on_shutdown: Literal["drain", "leave"] = Field(
        default="leave",
        description="leave (default, for restarts and upgrades): keep every VM running for "
        "the next start to adopt, so running jobs are not failed; drain: stop idle VMs, give "
        "busy ones drain_seconds to finish, then stop them (or run `blacksmith-mini drain` "
        "first).",
    )
    drain_seconds: float = Field(default=4.0, ge=0, le=3600)

    def resolved_api_token(self) -> str | None:
        return _secret(self.api_token, self.api_token_file, "server.api_token_file")

    def resolved_admin_token(self) -> str | None:
        return _secret(self.admin_token, self.admin_token_file, "server.admin_token_file")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BLACKSMITH_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: pathlib.Path = pathlib.Path(".blacksmith")
    database_url: str | None = None
    simulate: bool = False
    log_format: Literal["console", "json"] = "console"
    log_level: str = "info"
    tick_interval: float = Field(default=1.0, gt=0, description="Max seconds between ticks.")
    tick_duty: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Most of a core the loop spends computing ticks when woken often (after a "
        "tick that computed c seconds, the next waits c x (1/duty - 1)); 1 turns the limit off.",
    )
    server: ServerSettings = Field(default_factory=ServerSettings)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    vm: VmSettings = Field(default_factory=VmSettings)
    pools: list[PoolSettings] = Field(
        default_factory=lambda: [
            PoolSettings(),
            PoolSettings(
                name="large",
                labels=["self-hosted", "linux", "x64", "large"],
                vcpus=8,
                memory_mib=16384,
                max_vms=2,
            ),
        ]
    )
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    usage: UsageSettings = Field(default_factory=UsageSettings)
    hosts: HostsSettings = Field(default_factory=HostsSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        names = [pool.name for pool in self.pools]
        if len(names) != len(set(names)):
            raise ValueError(f"pool names must be unique, got {names}")
        if not self.pools:
            raise ValueError("declare at least one [[pools]] entry")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            SeedEnvSource(settings_cls),
        ]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    # --- derived ---------------------------------------------------------------------------

    def domain_pools(self) -> tuple[model.Pool, ...]:
        return tuple(pool.to_domain() for pool in self.pools)

    def scopes(self) -> tuple[str, ...]:
        """Where runners are registered: one organization, or each repository."""
        if self.github.organization:
            return (f"org:{self.github.organization}",)
        if self.simulate and not self.github.repositories:
            return tuple(self.simulator.repositories)
        return tuple(self.github.full_repositories())

    def policy(self) -> model.Policy:
        return model.Policy(
            max_vms=self.vm.max_vms,
            max_starts_per_tick=self.vm.max_starts_per_tick,
            pools=self.domain_pools(),
            scopes=self.scopes(),
            timeouts=self.vm.timeouts.to_domain(),
            org_scope=self.github.organization is not None,
        )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'blacksmith.db'}"

    def check_runnable(self) -> None:
        """Refuse to start with settings that cannot work; say what to set."""
        if self.simulate:
            return
        github = self.github
        if (github.app_id or github.client_id) and not github.private_key_file:
            raise ConfigError(
                "github.app_id/client_id is set but github.private_key_file is not: point it to "
                "the App's private key (.pem)"
            )
        if github.uses_app():
            github.private_key()
        elif not github.resolved_token():
            raise ConfigError(
                "no GitHub credentials: set GITHUB_TOKEN (or github.token_file in the config "
                "file), or a GitHub App (github.client_id, github.private_key_file), or run "
                "with --simulate to use the built-in simulated GitHub"
            )
        github.resolved_webhook_secret()
        if not self.scopes():
            raise ConfigError(
                "no repositories configured: set REPO_OWNER and REPO_NAME, or "
                'github.repositories = ["owner/name"] in the config file'
            )
        if self.vm.driver == "local" and not self.vm.runner_command:
            raise ConfigError(
                "vm.runner_command is empty: with real GitHub the local driver needs the runner "
                'command, e.g. runner_command = ["/opt/actions-runner/run.sh", "--jitconfig", '
                '"{jitconfig}"] under [vm]'
            )


def _secret(value: SecretStr | None, path: pathlib.Path | None, name: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError as exc:
        raise ConfigError(f"{name} {path} cannot be read ({exc.strerror})") from exc


def load(config_file: pathlib.Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional TOML file, the environment and explicit overrides."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist; check the --config path")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(
            env_prefix="BLACKSMITH_",
            env_nested_delimiter="__",
            extra="forbid",
            toml_file=config_file,
        )

    return _FromFile(**{key: value for key, value in overrides.items() if value is not None})
