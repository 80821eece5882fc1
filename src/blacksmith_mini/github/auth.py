"""Credentials for GitHub calls: a personal access token, or a GitHub App installation.

App rules (``../shared/reference/github.md`` §4): a JWT signed RS256 with the App's private key,
``iat`` 60 s in the past, ``exp`` at most 10 minutes after ``iat``, ``iss`` the client id or
App id; installation tokens last one hour and are refreshed five minutes before they expire
(or at once after a 401). Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx2
import jwt

from blacksmith_mini.github import errors, parse

JWT_LIFETIME_SECONDS = 540  # under GitHub's 10 minutes, with room for clock drift
REFRESH_BEFORE_SECONDS = 300
API_VERSION = "2022-11-28"


class TokenSource(Protocol):
    async def token(self) -> str: ...

    def invalidate(self) -> None: ...


class StaticToken:
    """A personal access token (or any token that does not expire on its own)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        return None


def app_jwt(*, issuer: str, private_key: str, now: float) -> str:
    """The App's JWT: RS256, ``iat`` = now - 60 s, ``exp`` = iat + 9 min."""
    issued = int(now) - 60
    claims = {"iat": issued, "exp": issued + JWT_LIFETIME_SECONDS, "iss": issuer}
    return jwt.encode(claims, private_key, algorithm="RS256")


class AppInstallation:
    """Installation tokens for a GitHub App, minted on demand and cached until near expiry."""

    def __init__(
        self,
        *,
        issuer: str,
        private_key: str,
        installation_id: int | None,
        api_url: str,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        discover_from: str | None = None,
    ) -> None:
        self.issuer = issuer
        self._key = private_key
        self.installation_id = installation_id
        self._discover_from = discover_from
        self.api_url = api_url.rstrip("/")
        self._transport = transport
        self._clock = clock
        self._cached: tuple[str, float] | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def jwt(self) -> str:
        return app_jwt(issuer=self.issuer, private_key=self._key, now=self._clock())

    def invalidate(self) -> None:
        self._cached = None

    async def token(self) -> str:
        async with self._lock:
            now = self._clock()
            if self._cached and self._cached[1] - now > REFRESH_BEFORE_SECONDS:
                return self._cached[0]
            if self.installation_id is None:
                self.installation_id = await self._discover()
            answer = await self.app_request(
                "POST", f"/app/installations/{self.installation_id}/access_tokens"
            )
            token = str(answer["token"])
            expires = parse.epoch(str(answer["expires_at"])) or (now + 3600)
            self._cached = (token, expires)
            self.refreshes += 1
            return token

    async def _discover(self) -> int:
        """``GET /repos/{o}/{r}/installation`` or ``/orgs/{org}/installation`` with the JWT."""
        scope = self._discover_from
        if scope is None:
            raise errors.BadCredentials(
                "github.installation_id is not set and no repository or organization to look "
                "it up from: set github.installation_id"
            )
        path = (
            f"/orgs/{scope[4:]}/installation"
            if scope.startswith("org:")
            else (f"/repos/{scope}/installation")
        )
        answer = await self.app_request("GET", path)
        return int(answer["id"])

    async def app_request(self, method: str, path: str, body: Any = None) -> Any:
        """A call authenticated as the App itself (JWT): /app/* and installation lookups."""
        return (await self.app_request_with_headers(method, path, body))[0]

    async def app_request_with_headers(
        self, method: str, path: str, body: Any = None
    ) -> tuple[Any, httpx2.Headers]:
        """``app_request`` that also returns the response headers (for pagination)."""
        headers = {
            "authorization": f"Bearer {self.jwt()}",
            "accept": "application/vnd.github+json",
            "x-github-api-version": API_VERSION,
            "user-agent": "blacksmith-mini",
        }
        try:
            async with httpx2.AsyncClient(transport=self._transport, timeout=15.0) as client:
                response = await client.request(
                    method, self.api_url + path, headers=headers, json=body
                )
        except httpx2.HTTPError as exc:
            raise errors.GitHubUnavailable(f"GitHub unreachable on {path}: {exc}") from exc
        if response.status_code == 401:
            raise errors.BadCredentials(
                f"GitHub refused the App's JWT on {path} ({_message(response)}): check "
                "github.app_id / github.client_id and the private key file"
            )
        if response.status_code == 404:
            raise errors.NotFound(
                f"{path}: not found ({_message(response)}); is the App installed there?"
            )
        if response.status_code >= 500:
            raise errors.GitHubUnavailable(f"GitHub answered {response.status_code} on {path}")
        if response.status_code >= 400:
            raise errors.GitHubError(
                f"GitHub answered {response.status_code} on {path}: {_message(response)}"
            )
        return (response.json() if response.content else None), response.headers


def _message(response: httpx2.Response) -> str:
    try:
        return str(response.json().get("message", ""))
    except ValueError:
        return response.text[:200]
