"""Authorization requests waiting for the user on the sign-in page, kept in the database.

The page is shown by one request and submitted by another, which may reach another worker
process (`mcp-idfwd issuer --workers N`), so the request lives in SQLite, not in memory. Its id
is random and is stored as a SHA-256 digest only, like codes and refresh tokens.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from mcp.server.auth.provider import AuthorizationParams

from fake_enterprise.oauth.clients import ClientStore, RegisteredClient
from fake_enterprise.storage import Database

__all__ = ["PendingRecord", "PendingStore"]

_SCHEMA = """CREATE TABLE IF NOT EXISTS oauth_pending_sign_ins (
    request_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    params TEXT NOT NULL,
    extras TEXT NOT NULL,
    expires_at REAL NOT NULL
)"""

# (client, params, extras as a dict, expires_at): what the provider rebuilds a PendingSignIn from.
PendingRecord = tuple[RegisteredClient, AuthorizationParams, dict[str, str | None], float]


def _digest(request_id: str) -> str:
    return hashlib.sha256(request_id.encode()).hexdigest()


class PendingStore:
    def __init__(self, db: Database, clients: ClientStore, clock: Callable[[], float]) -> None:
        self._db = db
        self._clients = clients
        self._clock = clock
        with db.transaction() as conn:
            conn.execute(_SCHEMA)

    def put(
        self,
        request_id: str,
        *,
        client_id: str,
        params: AuthorizationParams,
        extras: dict[str, str | None],
        expires_at: float,
    ) -> None:
        """Store (or reopen) a request; requests past their time are swept out meanwhile."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM oauth_pending_sign_ins WHERE expires_at <= ?", (self._clock(),))
            conn.execute(
                "INSERT OR REPLACE INTO oauth_pending_sign_ins"
                " (request_hash, client_id, params, extras, expires_at) VALUES (?, ?, ?, ?, ?)",
                (_digest(request_id), client_id, params.model_dump_json(), json.dumps(extras), expires_at),
            )

    def get(self, request_id: str, *, take: bool = False) -> PendingRecord | None:
        """The unexpired request, or None; with `take` it is removed in the same step (answers once)."""
        key = (_digest(request_id),)
        if take:
            with self._db.transaction() as conn:
                row = conn.execute(
                    "DELETE FROM oauth_pending_sign_ins WHERE request_hash = ? RETURNING *", key
                ).fetchone()
        else:
            with self._db.reading() as conn:
                row = conn.execute(
                    "SELECT * FROM oauth_pending_sign_ins WHERE request_hash = ?", key
                ).fetchone()
        if row is None or row["expires_at"] <= self._clock():
            return None
        client = self._clients.get(row["client_id"])
        if client is None:
            return None
        params = AuthorizationParams.model_validate_json(row["params"])
        return client, params, json.loads(row["extras"]), row["expires_at"]
