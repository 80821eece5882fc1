"""Per-VM cache tokens and signed blob URLs: they verify, refuse tampering, and never leak."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from blacksmith_mini.cache import tokens

SECRET = b"0123456789abcdef-secret"
CLAIM = tokens.Claim(
    repository="acme/widgets",
    write="refs/heads/feature",
    reads=("refs/heads/feature", "refs/heads/main"),
    expires_at=int(time.time()) + 600,
    vm_id="vm-7",
)


def test_a_minted_token_verifies_to_its_claim() -> None:
    assert tokens.verify(SECRET, tokens.mint(SECRET, CLAIM)) == CLAIM


def test_a_token_whose_claim_was_edited_is_refused() -> None:
    prefix, payload, mac = tokens.mint(SECRET, CLAIM).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["r"] = "acme/other"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(SECRET, f"{prefix}.{forged}.{mac}")


def test_another_secret_an_expired_token_and_garbage_are_refused() -> None:
    with pytest.raises(tokens.TokenError):
        tokens.verify(b"another-secret-of-16+", tokens.mint(SECRET, CLAIM))
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(SECRET, tokens.mint(SECRET, CLAIM), now=CLAIM.expires_at)
    for garbage in ("", "bmc1", "bmc1.x.y", "Bearer x", "bmc1.!!.??"):
        with pytest.raises(tokens.TokenError):
            tokens.verify(SECRET, garbage)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        tokens.mint(b"short", CLAIM)


def test_a_blob_signature_covers_permission_object_and_expiry() -> None:
    expires = int(time.time()) + 60
    sig = tokens.sign_blob(SECRET, permission="r", kind="entries", ident=4, expires_at=expires)
    tokens.verify_blob(
        SECRET, permission="r", kind="entries", ident=4, expires_at=str(expires), sig=sig
    )
    wrong = [
        {"permission": "w", "kind": "entries", "ident": 4, "expires_at": str(expires)},
        {"permission": "r", "kind": "uploads", "ident": 4, "expires_at": str(expires)},
        {"permission": "r", "kind": "entries", "ident": 5, "expires_at": str(expires)},
        {"permission": "r", "kind": "entries", "ident": 4, "expires_at": str(expires + 1)},
    ]
    for arguments in wrong:
        with pytest.raises(tokens.TokenError):
            tokens.verify_blob(SECRET, sig=sig, **arguments)  # type: ignore[arg-type]
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify_blob(
            SECRET,
            permission="r",
            kind="entries",
            ident=4,
            expires_at=str(expires),
            sig=sig,
            now=expires + 1,
        )


def test_redact_masks_tokens_bearer_credentials_and_signatures() -> None:
    token = tokens.mint(SECRET, CLAIM)
    text = f"token {token} header Bearer abc.def url /_blob/x?sp=r&sig=SECRETSIG&se=1"
    cleaned = tokens.redact(text)
    assert token not in cleaned and "abc.def" not in cleaned and "SECRETSIG" not in cleaned
    assert "sig=***&se=1" in cleaned


def test_the_filter_cleans_messages_and_uvicorn_style_arguments() -> None:
    token = tokens.mint(SECRET, CLAIM)
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s"',
        ("1.2.3.4", "GET", "/_blob/cache/entries/1?sig=TOPSECRET"),
        None,
    )
    tokens.RedactingFilter().filter(record)
    assert isinstance(record.args, tuple) and "TOPSECRET" not in record.getMessage()
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, f"saw {token}", None, None)
    tokens.RedactingFilter().filter(plain)
    assert token not in plain.getMessage()
