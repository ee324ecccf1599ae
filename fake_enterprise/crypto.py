"""Encryption at rest: the data key and the AES-GCM cipher that seals stored secrets."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DATA_KEY_ENV",
    "DataCipher",
    "DataKeyError",
    "SealedDataError",
    "StorageTamperedError",
    "resolve_data_key",
]

DATA_KEY_ENV = "MCP_IDFWD_DATA_KEY"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class DataKeyError(Exception):
    """The data key is missing, malformed, unsafely stored or does not open this database."""


class SealedDataError(Exception):
    """A sealed value could not be opened (wrong key, tampered or misplaced ciphertext)."""


class StorageTamperedError(Exception):
    """A stored row that must be authentic is not: it was changed outside the issuer."""


class DataCipher:
    """AES-256-GCM with a random nonce per value; `context` binds a ciphertext to its row."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise DataKeyError("the data key must be 32 bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "DataCipher(<key hidden>)"

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealedDataError(f"cannot open sealed data for {context!r}") from exc


def _decode_key(text: str, source: str) -> bytes:
    text = text.strip()
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DataKeyError(f"the data key from {source} is not base64url") from exc
    if len(key) != _KEY_BYTES:
        raise DataKeyError(f"the data key from {source} must decode to 32 bytes, not {len(key)}")
    return key


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise DataKeyError(f"data key file {path} is not a regular file")
    if mode & 0o077:
        raise DataKeyError(f"data key file {path} is readable by others; chmod 600 it")
    return _decode_key(path.read_text(encoding="ascii"), f"key file {path}")


def _create_key_file(path: Path) -> bytes:
    key = secrets.token_bytes(_KEY_BYTES)
    # O_EXCL with mode 0600: the file is never visible with wider permissions, and a concurrent
    # first start cannot overwrite a key another process already uses.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(_encode_key(key) + "\n")
    return key


def _holds_data(db_path: str) -> bool:
    """Whether the database file (or its write-ahead log) already has content: a key was used for it."""
    if db_path == ":memory:":
        return False
    for name in (db_path, f"{db_path}-wal"):
        try:
            if os.path.getsize(name) > 0:
                return True
        except OSError:
            continue
    return False


def resolve_data_key(explicit: bytes | None, db_path: str, key_file: str | None) -> bytes:
    """The data key: explicit, else the environment, else the key file (created if absent).

    An in-memory database with no configured key gets an ephemeral one: nothing outlives it.
    """
    if explicit is not None:
        if len(explicit) != _KEY_BYTES:
            raise DataKeyError("the data key must be 32 bytes")
        return explicit
    from_env = os.environ.get(DATA_KEY_ENV)
    if from_env:
        return _decode_key(from_env, f"${DATA_KEY_ENV}")
    if key_file is None and db_path == ":memory:":
        return secrets.token_bytes(_KEY_BYTES)
    path = Path(key_file) if key_file is not None else Path(f"{db_path}.key")
    if not path.exists() and _holds_data(db_path):
        # A new key would not open the old data: say so instead of creating one that never will.
        raise DataKeyError(
            f"database {db_path} exists but its data key file {path} is gone; the grants and signing keys"
            f" in it cannot be opened without that key. Restore {path} (or set ${DATA_KEY_ENV}), or start"
            f" fresh: move {db_path} (and its -wal and -shm files) away"
        )
    try:
        return _create_key_file(path)
    except FileExistsError:
        return _read_key_file(path)
    except OSError as exc:
        raise DataKeyError(f"cannot create data key file {path}: {exc.strerror}") from exc
