"""AES-GCM encryption at rest for stored secrets, and where its key comes from.

The key is 32 bytes, given directly, from the environment (`MCP_IDFWD_DATA_KEY`, base64url)
or from a key file created on first use with mode 0600. Each ciphertext is bound to the row
it belongs to (associated data), so a ciphertext copied into another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DATA_KEY_ENV",
    "DataCipher",
    "DataKeyError",
    "DecryptionError",
    "TamperedRecordError",
    "load_data_key",
]

DATA_KEY_ENV = "MCP_IDFWD_DATA_KEY"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_FORMAT_V1 = b"\x01"


class DataKeyError(ValueError):
    """The data key is missing, malformed, or its key file is readable by others."""


class DecryptionError(ValueError):
    """A stored ciphertext does not decrypt under this key for this row (wrong key or tampered)."""


class TamperedRecordError(DecryptionError):
    """A stored row does not match its seal: a field was changed outside client_runtime, the row
    was moved, or the data key is wrong. The row is never used."""


def _decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise DataKeyError("data key is not valid base64url") from None
    if len(key) != _KEY_BYTES:
        raise DataKeyError(f"data key must decode to {_KEY_BYTES} bytes")
    return key


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def _read_or_create_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise DataKeyError(
                f"key file {path} must not be readable by group or others (mode {mode:o})"
            ) from None
        return _decode_key(path.read_text())
    key = secrets.token_bytes(_KEY_BYTES)
    with os.fdopen(fd, "w") as handle:
        handle.write(_encode_key(key) + "\n")
    return key


def load_data_key(
    key: bytes | str | None = None,
    *,
    key_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes:
    """The 32-byte data key: `key`, else `$MCP_IDFWD_DATA_KEY`, else `key_file` (created if absent)."""
    if isinstance(key, bytes):
        if len(key) != _KEY_BYTES:
            raise DataKeyError(f"data key must be {_KEY_BYTES} bytes")
        return key
    if isinstance(key, str):
        return _decode_key(key)
    from_env = (os.environ if environ is None else environ).get(DATA_KEY_ENV)
    if from_env:
        return _decode_key(from_env)
    if key_file is not None:
        return _read_or_create_key_file(Path(key_file))
    raise DataKeyError(f"no data key: pass one, set {DATA_KEY_ENV}, or give a key file")


class DataCipher:
    """Encrypts and decrypts small secrets with AES-256-GCM, bound to a row by associated data."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise DataKeyError(f"data key must be {_KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "DataCipher(<key hidden>)"

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, blob: bytes, *, associated_data: bytes) -> bytes:
        if blob[:1] != _FORMAT_V1 or len(blob) < 1 + _NONCE_BYTES + 16:
            raise DecryptionError("stored ciphertext has an unknown format")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, associated_data)
        except InvalidTag:
            raise DecryptionError(
                "stored ciphertext does not decrypt (wrong key, or moved or altered)"
            ) from None
