"""Key material the composition root reads or makes: the simulated App's RSA pair, the
operator's SSH public key."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from blacksmith_mini import settings as settings_mod


def rsa_pair(path: os.PathLike[str]) -> tuple[str, str]:
    """The simulated App's key pair, kept (0600) in the data dir so restarts reuse it."""
    from pathlib import Path

    key_path = Path(path)
    if key_path.exists():
        private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    assert isinstance(private, rsa.RSAPrivateKey)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def ssh_key(settings: settings_mod.Settings) -> str | None:
    path = settings.vm.ssh_key_path
    if path is None:
        return None
    public = path if path.suffix == ".pub" else path.with_name(path.name + ".pub")
    try:
        return public.read_text().strip()
    except OSError as exc:
        raise settings_mod.ConfigError(
            f"SSH public key {public} cannot be read ({exc.strerror}); fix SSH_KEY_PATH"
        ) from exc
