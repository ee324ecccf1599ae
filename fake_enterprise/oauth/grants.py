"""What a sign-in grants: authorization codes, token families, refresh tokens, issued access tokens.

A family is one sign-in of one user at one client. Every refresh token and access token issued
from it belongs to it, so revoking it (a reused code, a reused refresh token, RFC 7009
revocation) ends them all. Codes and refresh tokens are stored as SHA-256 digests only: they are
random, so a digest identifies them and a copy of the database does not hand them out.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from fake_enterprise.storage import Database

__all__ = ["CodeRecord", "Family", "GrantStore", "RefreshRecord", "new_token"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS oauth_families (
        family_id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        scopes TEXT NOT NULL,
        resource TEXT,
        auth_time INTEGER NOT NULL,
        revoked_at INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS oauth_codes (
        code_hash TEXT PRIMARY KEY,
        family_id TEXT NOT NULL REFERENCES oauth_families (family_id) ON DELETE CASCADE,
        redirect_uri TEXT NOT NULL,
        redirect_uri_explicit INTEGER NOT NULL,
        code_challenge TEXT NOT NULL,
        nonce TEXT,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS oauth_refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        family_id TEXT NOT NULL REFERENCES oauth_families (family_id) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS oauth_access_tokens (
        jti TEXT PRIMARY KEY,
        family_id TEXT REFERENCES oauth_families (family_id) ON DELETE CASCADE,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    )""",
)


def new_token() -> str:
    """A code or refresh token: 256 bits of randomness (RFC 6749 §10.10 asks for at least 128)."""
    return secrets.token_urlsafe(32)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Family:
    family_id: str
    client_id: str
    tenant_id: str
    user_id: str
    scopes: tuple[str, ...]
    resource: str | None
    auth_time: int
    revoked: bool


@dataclass(frozen=True)
class CodeRecord:
    family: Family
    redirect_uri: str
    redirect_uri_explicit: bool
    code_challenge: str
    nonce: str | None
    expires_at: int
    used: bool


@dataclass(frozen=True)
class RefreshRecord:
    family: Family
    expires_at: int
    used: bool
    token: str = field(repr=False)


def _family(row: sqlite3.Row) -> Family:
    return Family(
        family_id=row["family_id"],
        client_id=row["client_id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        scopes=tuple(row["scopes"].split()),
        resource=row["resource"],
        auth_time=row["auth_time"],
        revoked=row["revoked_at"] is not None,
    )


class GrantStore:
    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        with db.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def _now(self) -> int:
        return int(self._clock())

    def start_family(
        self,
        *,
        client_id: str,
        tenant_id: str,
        user_id: str,
        scopes: tuple[str, ...],
        resource: str | None,
        auth_time: int,
    ) -> str:
        family_id = secrets.token_hex(16)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO oauth_families"
                " (family_id, client_id, tenant_id, user_id, scopes, resource, auth_time)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (family_id, client_id, tenant_id, user_id, " ".join(scopes), resource, auth_time),
            )
        return family_id

    def add_code(
        self,
        code: str,
        *,
        family_id: str,
        redirect_uri: str,
        redirect_uri_explicit: bool,
        code_challenge: str,
        nonce: str | None,
        ttl: int,
    ) -> None:
        now = self._now()
        with self._db.transaction() as conn:
            # Spent and expired codes are of no further use once their lifetime is over.
            conn.execute("DELETE FROM oauth_codes WHERE expires_at < ?", (now - ttl,))
            conn.execute(
                "INSERT INTO oauth_codes (code_hash, family_id, redirect_uri, redirect_uri_explicit,"
                " code_challenge, nonce, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    _digest(code),
                    family_id,
                    redirect_uri,
                    int(redirect_uri_explicit),
                    code_challenge,
                    nonce,
                    now + ttl,
                ),
            )

    def code(self, code: str) -> CodeRecord | None:
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT * FROM oauth_codes JOIN oauth_families USING (family_id) WHERE code_hash = ?",
                (_digest(code),),
            ).fetchone()
        if row is None:
            return None
        return CodeRecord(
            family=_family(row),
            redirect_uri=row["redirect_uri"],
            redirect_uri_explicit=bool(row["redirect_uri_explicit"]),
            code_challenge=row["code_challenge"],
            nonce=row["nonce"],
            expires_at=row["expires_at"],
            used=row["used_at"] is not None,
        )

    def spend_code(self, code: str) -> bool:
        """Mark the code used; False if it already was (the loser of a race, or a replay)."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE oauth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL",
                (self._now(), _digest(code)),
            )
        return cursor.rowcount == 1

    def add_refresh_token(self, family_id: str, ttl: int) -> str:
        token = new_token()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO oauth_refresh_tokens (token_hash, family_id, expires_at) VALUES (?, ?, ?)",
                (_digest(token), family_id, self._now() + ttl),
            )
        return token

    def refresh_token(self, token: str) -> RefreshRecord | None:
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT * FROM oauth_refresh_tokens JOIN oauth_families USING (family_id)"
                " WHERE token_hash = ?",
                (_digest(token),),
            ).fetchone()
        if row is None:
            return None
        return RefreshRecord(
            family=_family(row), expires_at=row["expires_at"], used=row["used_at"] is not None, token=token
        )

    def rotate_refresh_token(self, token: str) -> bool:
        """Mark the refresh token used; False if it already was, or its family is revoked."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE oauth_refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
                " AND family_id IN (SELECT family_id FROM oauth_families WHERE revoked_at IS NULL)",
                (self._now(), _digest(token)),
            )
        return cursor.rowcount == 1

    def record_access_token(self, jti: str, family_id: str | None, expires_at: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM oauth_access_tokens WHERE expires_at < ?", (self._now(),))
            conn.execute(
                "INSERT INTO oauth_access_tokens (jti, family_id, expires_at) VALUES (?, ?, ?)",
                (jti, family_id, expires_at),
            )

    def access_token_active(self, jti: str) -> bool:
        """Whether an access token we issued is neither revoked nor from a revoked family."""
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT a.revoked_at AS revoked_at, f.revoked_at AS family_revoked_at"
                " FROM oauth_access_tokens a LEFT JOIN oauth_families f USING (family_id) WHERE a.jti = ?",
                (jti,),
            ).fetchone()
        return row is not None and row["revoked_at"] is None and row["family_revoked_at"] is None

    def access_token_family(self, jti: str) -> str | None:
        with self._db.reading() as conn:
            row = conn.execute("SELECT family_id FROM oauth_access_tokens WHERE jti = ?", (jti,)).fetchone()
        return None if row is None else row["family_id"]

    def revoke_access_token(self, jti: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE oauth_access_tokens SET revoked_at = ? WHERE jti = ?", (self._now(), jti))

    def revoke_family(self, family_id: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE oauth_families SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
                (self._now(), family_id),
            )

    def family_active(self, family_id: str) -> bool:
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT revoked_at FROM oauth_families WHERE family_id = ?", (family_id,)
            ).fetchone()
        return row is not None and row["revoked_at"] is None
