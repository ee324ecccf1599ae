"""OAuth clients: registered dynamically (RFC 7591) or by the admin API, secrets sealed at rest."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

from mcp.shared.auth import InvalidRedirectUriError, OAuthClientInformationFull
from pydantic import AnyUrl

from fake_enterprise.crypto import DataCipher, SealedDataError
from fake_enterprise.storage import Database

__all__ = ["ClientExistsError", "ClientStore", "RegisteredClient", "new_client_secret"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS oauth_clients (
        client_id TEXT PRIMARY KEY,
        sealed_secret BLOB,
        metadata TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )""",
)


class ClientExistsError(Exception):
    """A client with this id is already registered."""


def _is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _same_redirect(registered: AnyUrl, requested: AnyUrl) -> bool:
    """Exact match, except that a loopback `http` redirect may use any port (RFC 8252 §7.3)."""
    if str(registered) == str(requested):
        return True
    return (
        registered.scheme == requested.scheme == "http"
        and _is_loopback_host(registered.host)
        and registered.host == requested.host
        and registered.path == requested.path
        and registered.query == requested.query
        and registered.fragment is None
        and requested.fragment is None
        and registered.username is None
        and requested.username is None
    )


class RegisteredClient(OAuthClientInformationFull):
    """The SDK's client record, with RFC 8252 loopback redirect matching."""

    def validate_redirect_uri(self, redirect_uri: AnyUrl | None) -> AnyUrl:
        if redirect_uri is None:
            return super().validate_redirect_uri(None)
        if any(_same_redirect(registered, redirect_uri) for registered in self.redirect_uris or ()):
            return redirect_uri
        raise InvalidRedirectUriError(f"redirect_uri '{redirect_uri}' is not registered for this client")

    @property
    def display_name(self) -> str:
        return self.client_name or self.client_id


def _secret_context(client_id: str) -> str:
    return f"client-secret:{len(client_id)}:{client_id}"


class ClientStore:
    def __init__(self, db: Database, cipher: DataCipher, clock: Callable[[], float]) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = clock
        with db.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def add(self, client: OAuthClientInformationFull, *, source: str) -> RegisteredClient:
        """Store `client` (its secret sealed); `ClientExistsError` if the id is taken."""
        metadata = client.model_dump(mode="json", exclude_none=True, exclude={"client_secret"})
        sealed = None
        if client.client_secret is not None:
            sealed = self._cipher.seal(client.client_secret.encode(), _secret_context(client.client_id))
        try:
            with self._db.transaction() as conn:
                conn.execute(
                    "INSERT INTO oauth_clients (client_id, sealed_secret, metadata, source, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (client.client_id, sealed, json.dumps(metadata), source, int(self._clock())),
                )
        except sqlite3.IntegrityError as exc:
            raise ClientExistsError(f"client {client.client_id!r} already exists") from exc
        return RegisteredClient.model_validate(client.model_dump())

    def get(self, client_id: str) -> RegisteredClient | None:
        """The client with its secret in the clear, or None (also when its sealed secret is unusable)."""
        with self._db.reading() as conn:
            row = conn.execute("SELECT * FROM oauth_clients WHERE client_id = ?", (client_id,)).fetchone()
        if row is None:
            return None
        data: dict[str, Any] = json.loads(row["metadata"])
        if row["sealed_secret"] is not None:
            try:
                data["client_secret"] = self._cipher.open(
                    row["sealed_secret"], _secret_context(client_id)
                ).decode()
            except SealedDataError:
                return None
        return RegisteredClient.model_validate(data)

    def list(self) -> list[dict[str, Any]]:
        """Every client's public metadata (never a secret), oldest first."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT metadata, source FROM oauth_clients ORDER BY created_at, rowid"
            ).fetchall()
        return [{**json.loads(row["metadata"]), "source": row["source"]} for row in rows]

    def delete(self, client_id: str) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute("DELETE FROM oauth_clients WHERE client_id = ?", (client_id,))
        return cursor.rowcount > 0


def new_client_secret() -> str:
    return secrets.token_hex(32)
