"""Per-VM cache tokens and signed blob URLs: HMAC-SHA256 with a secret the caller passes.

A token is ``bmc1.<claim>.<mac>``: the claim is compact JSON (base64url) naming the repository,
the one scope it writes (or none), the scopes it reads in lookup order, its expiry and the VM
it was minted for; the MAC is HMAC-SHA256 over ``bmc1.<claim>`` with a key derived from the
secret for tokens only. Blob URLs carry their own signature (``sig``) made with a second
derived key, so a token is never a URL signature and a URL never a token.

Tokens and signatures never reach logs: ``redact`` masks both in any text and
``RedactingFilter`` does it on every log record it is attached to (uvicorn's access log
prints query strings, where ``sig`` lives).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass

PREFIX = "bmc1"
_TOKEN_RE = re.compile(r"bmc1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_SIG_RE = re.compile(r"(sig=)[^&\s\"']+")
_BEARER_RE = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)


class TokenError(Exception):
    """A token or a URL signature that does not verify; the message never contains it."""


@dataclass(frozen=True)
class Claim:
    """What one VM's token allows: read ``reads`` (in lookup order), write ``write``."""

    repository: str
    write: str | None
    reads: tuple[str, ...]
    expires_at: int
    vm_id: str

    @property
    def names_vm_only(self) -> bool:
        """A VM token: its repository and scopes are resolved from the VM's job."""
        return self.repository == ""

    @property
    def can_read(self) -> bool:
        return bool(self.reads)

    @property
    def can_write(self) -> bool:
        return self.write is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: bytes, purpose: str) -> bytes:
    if len(secret) < 16:
        raise ValueError("the cache secret must be at least 16 bytes")
    return hmac.new(secret, f"blacksmith-mini cache {purpose}".encode(), hashlib.sha256).digest()


def mint(secret: bytes, claim: Claim) -> str:
    """A token carrying ``claim``, signed with ``secret``."""
    body = {
        "r": claim.repository,
        "w": claim.write,
        "rs": list(claim.reads),
        "e": claim.expires_at,
        "vm": claim.vm_id,
    }
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{PREFIX}.{payload}"
    mac = hmac.new(_derive(secret, "token"), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(mac)}"


def vm_token(secret: bytes, *, vm_id: int, expires_at: int) -> str:
    """A token naming only the VM (its job, hence its repository and branch, is not known at
    boot); the service resolves its claim when the VM calls."""
    return mint(
        secret, Claim(repository="", write=None, reads=(), expires_at=expires_at, vm_id=str(vm_id))
    )


def verify(secret: bytes, token: str, *, now: float | None = None) -> Claim:
    """The claim of a valid, unexpired token; ``TokenError`` otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("not a cache token")
    signed = f"{parts[0]}.{parts[1]}"
    expected = hmac.new(_derive(secret, "token"), signed.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(parts[2])
        body = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError) as error:
        raise TokenError("malformed cache token") from error
    if not hmac.compare_digest(given, expected):
        raise TokenError("cache token signature does not verify")
    try:
        claim = Claim(
            repository=str(body["r"]),
            write=None if body["w"] is None else str(body["w"]),
            reads=tuple(str(scope) for scope in body["rs"]),
            expires_at=int(body["e"]),
            vm_id=str(body["vm"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise TokenError("malformed cache token claim") from error
    if claim.expires_at <= (time.time() if now is None else now):
        raise TokenError("cache token expired")
    return claim


def sign_blob(secret: bytes, *, permission: str, kind: str, ident: int, expires_at: int) -> str:
    """The ``sig`` of a blob URL allowing ``permission`` ("r" or "w") on one upload or entry."""
    message = f"{permission}\n{kind}\n{ident}\n{expires_at}".encode()
    return _b64(hmac.new(_derive(secret, "blob-url"), message, hashlib.sha256).digest())


def verify_blob(
    secret: bytes,
    *,
    permission: str,
    kind: str,
    ident: int,
    expires_at: str | None,
    sig: str | None,
    now: float | None = None,
) -> None:
    """Raises ``TokenError`` unless ``sig`` signs this permission on this object, unexpired."""
    if not sig or not expires_at or not expires_at.isdigit():
        raise TokenError("blob URL is not signed")
    expected = sign_blob(
        secret, permission=permission, kind=kind, ident=ident, expires_at=int(expires_at)
    )
    if not hmac.compare_digest(sig, expected):
        raise TokenError("blob URL signature does not verify")
    if int(expires_at) <= (time.time() if now is None else now):
        raise TokenError("blob URL expired")


def redact(text: str) -> str:
    """``text`` with every cache token, bearer credential and URL signature masked."""
    text = _TOKEN_RE.sub("bmc1.***", text)
    text = _BEARER_RE.sub(r"\1***", text)
    return _SIG_RE.sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    """Masks cache tokens and URL signatures in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            # uvicorn's access formatter reads the arguments themselves: clean them in place
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
