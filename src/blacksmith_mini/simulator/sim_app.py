"""A simulated GitHub App: its id, public key, one installation, and the tokens it issued."""

from __future__ import annotations

import dataclasses
import secrets

import jwt

__all__ = ["SimApp"]


@dataclasses.dataclass
class SimApp:
    """A simulated GitHub App: its id, public key, one installation, and the tokens it issued."""

    app_id: str
    public_key_pem: str
    installation_id: int = 1
    token_ttl_seconds: float = 3600.0
    tokens: dict[str, float] = dataclasses.field(default_factory=dict)  # token -> expires at
    issued: int = 0

    def check_jwt(self, token: str, now: float) -> str | None:
        """None when the JWT is acceptable, else GitHub's complaint."""
        try:
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["RS256"],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "require": ["iat", "exp", "iss"],
                },
            )
        except jwt.PyJWTError as exc:
            return f"A JSON web token could not be decoded ({exc})"
        if str(claims["iss"]) != self.app_id:
            return "'Issuer' claim ('iss') must be the App's id or client id"
        if claims["iat"] > now + 60:
            return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
        if claims["exp"] <= now:
            return "'Expiration time' claim ('exp') is in the past"
        if claims["exp"] - claims["iat"] > 600:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def issue(self, now: float) -> tuple[str, float]:
        self.issued += 1
        token = f"ghs_{self.app_id}_{secrets.token_urlsafe(24)}"
        self.tokens[token] = now + self.token_ttl_seconds
        return token, self.tokens[token]

    def token_valid(self, token: str, now: float) -> bool:
        expires = self.tokens.get(token)
        return expires is not None and now < expires
