"""GitHub App authentication against the simulated App, organization scope, redelivery, and
``blacksmith-mini doctor``."""

from __future__ import annotations

import pathlib
import time

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from blacksmith_mini import cli
from blacksmith_mini.github import auth, client, errors, redelivery
from blacksmith_mini.simulator import github_api, state, webhook_sender

pytestmark = pytest.mark.anyio


def keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


PRIVATE, PUBLIC = keypair()


def simulated(ttl: float = 3600.0, sender: bool = False):  # type: ignore[no-untyped-def]
    sim = state.SimState(repositories=["acme/app", "acme/infra"])
    app = github_api.SimApp(app_id="77", public_key_pem=PUBLIC, token_ttl_seconds=ttl)
    hooks = (
        webhook_sender.WebhookSender(
            sim,
            url="http://receiver.test/hook",
            secret="s",
            transport=httpx2.MockTransport(lambda r: httpx2.Response(503)),
        )
        if sender
        else None
    )
    api = github_api.create_app(sim, token="pat", sim_app=app, sender=hooks)
    transport = httpx2.ASGITransport(app=api)
    installation = auth.AppInstallation(
        issuer="77",
        private_key=PRIVATE,
        installation_id=None,
        api_url="http://gh.test",
        transport=transport,
        discover_from="acme/app",
    )
    gh = client.GitHubClient(
        token=installation, api_url="http://gh.test", inner_transport=transport, mutation_spacing=0
    )
    return sim, app, installation, gh, hooks


def test_jwt_claims_follow_githubs_rules() -> None:
    now = 1_800_000_000.0
    claims = jwt.decode(
        auth.app_jwt(issuer="77", private_key=PRIVATE, now=now),
        PUBLIC,
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == "77"
    assert claims["iat"] == now - 60
    assert claims["exp"] - claims["iat"] <= 600


async def test_installation_token_is_discovered_minted_and_used() -> None:
    _, app, installation, gh, _ = simulated()
    assert await gh.open_jobs("acme/app") == []
    assert installation.installation_id == 1 and app.issued == 1
    await gh.open_jobs("acme/app")
    assert app.issued == 1  # cached, not re-minted


async def test_expired_token_is_refreshed_after_a_401() -> None:
    _, app, installation, gh, _ = simulated(ttl=3600)
    await gh.open_jobs("acme/app")
    app.tokens = dict.fromkeys(app.tokens, 0.0)  # GitHub expired it early
    await gh.open_jobs("acme/app")
    assert app.issued == 2 and installation.refreshes == 2


async def test_token_is_refreshed_before_it_expires() -> None:
    _, app, _, gh, _ = simulated(ttl=200)  # always inside the 5-minute refresh margin
    await gh.open_jobs("acme/app")
    await gh.open_jobs("acme/app")
    # two polls, each listing every open run status (no runs, so no job listings)
    assert app.issued == gh.rate.requests == 2 * len(client.OPEN_RUN_STATUSES)


async def test_a_jwt_with_a_too_long_life_is_refused() -> None:
    _, app, _, _, _ = simulated()
    now = time.time()
    long = jwt.encode({"iat": int(now), "exp": int(now) + 3600, "iss": "77"}, PRIVATE, "RS256")
    assert app.check_jwt(long, now) == "'Expiration time' claim ('exp') is too far in the future"
    wrong = jwt.encode({"iat": int(now), "exp": int(now) + 60, "iss": "78"}, PRIVATE, "RS256")
    assert "Issuer" in (app.check_jwt(wrong, now) or "")


async def test_organization_runner_group_and_repositories() -> None:
    sim, _, _, gh, _ = simulated()
    group = sim.add_group("Blacksmith")
    assert await gh.runner_group_id("acme", "blacksmith") == group.id
    with pytest.raises(errors.NotFound, match="no runner group named 'gpu'"):
        await gh.runner_group_id("acme", "gpu")
    assert await gh.organization_repositories("acme") == ["acme/app", "acme/infra"]
    registration = await gh.register_runner(
        "org:acme", name="bm-1-o", labels=["self-hosted"], runner_group_id=group.id
    )
    assert [r.name for r in await gh.runners("org:acme", prefix="bm")] == ["bm-1-o"]
    assert await gh.delete_runner("org:acme", registration.runner_id) is True


async def test_failed_deliveries_are_redelivered_once() -> None:
    sim, _, installation, _, hooks = simulated(sender=True)
    assert hooks is not None
    sim.queue_job(repository="acme/app", labels=["self-hosted"], duration=1, conclusion="success")
    await hooks.drain()
    failed = [d for d in hooks.log if d.status_code >= 300]
    assert len(failed) == 1
    hooks.transport = httpx2.MockTransport(lambda r: httpx2.Response(202))
    hooks._client = None
    asked = await redelivery.redeliver_failed(
        installation, known=_none_known, since=time.time() - 60, now=time.time()
    )
    assert asked == [failed[0].guid]
    await hooks.drain()
    assert hooks.log[-1].redelivery and hooks.log[-1].status_code == 202
    again = await redelivery.redeliver_failed(
        installation, known=_none_known, since=time.time() - 60, now=time.time()
    )
    assert again == []  # a later attempt delivered it


async def _none_known(_: object) -> set[str]:
    return set()


def test_doctor_against_the_simulator(tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(cli.app, ["doctor", "--simulate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ok   credentials" in result.output and "repository acme/app" in result.output


def test_doctor_reports_a_missing_runner_group(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[github]\norganization = "acme"\nrunner_group = "gpu-runners"\n')
    result = CliRunner().invoke(
        cli.app, ["doctor", "--simulate", "--config", str(config), "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "FAIL runner group" in result.output and "fix:" in result.output


def test_doctor_explains_an_unreachable_github(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret_value_123")
    monkeypatch.setenv("REPO_OWNER", "acme")
    monkeypatch.setenv("REPO_NAME", "app")
    monkeypatch.setenv("BLACKSMITH_GITHUB__API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("BLACKSMITH_GITHUB__REQUEST_TIMEOUT", "2")
    result = CliRunner().invoke(cli.app, ["doctor", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "FAIL credentials" in result.output and "reaches GitHub" in result.output
    assert "ghp_secret_value_123" not in result.output
