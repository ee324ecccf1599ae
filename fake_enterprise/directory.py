"""Users, their stored SSO grants (sealed at rest) and per-tenant policies."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from fake_enterprise.crypto import DataCipher
from fake_enterprise.storage import Database, new_subject

__all__ = [
    "Directory",
    "Grant",
    "TenantPolicy",
    "UnknownUserError",
    "User",
    "UserExistsError",
]


class UnknownUserError(Exception):
    """No such user in the tenant."""


class UserExistsError(Exception):
    """The user already exists in the tenant."""


@dataclass(frozen=True)
class User:
    """A user of a tenant. `subject` is the opaque `sub` the directory assigns at creation (C1):
    unique within the issuer, unlike `user_id`, which another tenant may also use."""

    tenant_id: str
    user_id: str
    email: str | None = None
    name: str | None = None
    token_profile: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class Grant:
    """A user's stored SSO refresh grant; the refresh token itself stays sealed."""

    granted_at: int
    expires_at: int | None
    revoked_at: int | None
    sealed_refresh_token: bytes = field(repr=False)


@dataclass(frozen=True)
class TenantPolicy:
    deny: bool = False
    allowed_audiences: tuple[str, ...] | None = None

    def allows(self, audience: str) -> bool:
        return not self.deny and (self.allowed_audiences is None or audience in self.allowed_audiences)


# The tenant's policy, the user and the user's grant; a missing row shows as a NULL in its
# NOT NULL key or timestamp column.
_LOOKUP = """
SELECT asked.tenant_id, asked.user_id,
       policy.tenant_id AS policy_tenant, policy.deny, policy.allowed_audiences,
       users.created_at AS user_created, users.subject, users.email, users.name, users.token_profile,
       grants.sealed_refresh_token, grants.granted_at, grants.expires_at, grants.revoked_at
FROM (SELECT ? AS tenant_id, ? AS user_id) AS asked
LEFT JOIN tenant_policies AS policy ON policy.tenant_id = asked.tenant_id
LEFT JOIN users ON users.tenant_id = asked.tenant_id AND users.user_id = asked.user_id
LEFT JOIN grants ON grants.tenant_id = asked.tenant_id AND grants.user_id = asked.user_id
"""


def _user_of(row: sqlite3.Row) -> User:
    return User(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        email=row["email"],
        name=row["name"],
        token_profile=row["token_profile"],
        subject=row["subject"],
    )


def _grant_of(row: sqlite3.Row) -> Grant | None:
    """The grant columns of a row joined LEFT to `grants` (None: no grant; `granted_at` is NOT NULL)."""
    if row["granted_at"] is None:
        return None
    return Grant(
        granted_at=row["granted_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        sealed_refresh_token=row["sealed_refresh_token"],
    )


def _policy_of(row: sqlite3.Row) -> TenantPolicy:
    audiences = row["allowed_audiences"]
    return TenantPolicy(
        deny=bool(row["deny"]),
        allowed_audiences=None if audiences is None else tuple(json.loads(audiences)),
    )


def _grant_context(tenant_id: str, user_id: str) -> str:
    # Length-prefixed so that no two (tenant, user) pairs share a context.
    return f"grant:{len(tenant_id)}:{tenant_id}:{user_id}"


class Directory:
    def __init__(self, db: Database, cipher: DataCipher, clock: Callable[[], float]) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = clock

    def create_user(self, user: User) -> User:
        """Store `user` with a fresh subject; the answer carries it."""
        created = replace(user, subject=new_subject())
        try:
            with self._db.transaction() as conn:
                conn.execute(
                    "INSERT INTO users (tenant_id, user_id, email, name, token_profile, created_at, subject)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.tenant_id,
                        user.user_id,
                        user.email,
                        user.name,
                        user.token_profile,
                        self._now(),
                        created.subject,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            message = f"user {user.user_id!r} already exists in tenant {user.tenant_id!r}"
            raise UserExistsError(message) from exc
        return created

    def put_grant(self, tenant_id: str, user_id: str, refresh_token: str, expires_at: int | None) -> Grant:
        """Store (or replace) the user's SSO grant: the user has signed in."""
        now = self._now()
        sealed = self._cipher.seal(refresh_token.encode(), _grant_context(tenant_id, user_id))
        with self._db.transaction() as conn:
            self._require_user(conn, tenant_id, user_id)
            conn.execute(
                "INSERT OR REPLACE INTO grants"
                " (tenant_id, user_id, sealed_refresh_token, granted_at, expires_at, revoked_at)"
                " VALUES (?, ?, ?, ?, ?, NULL)",
                (tenant_id, user_id, sealed, now, expires_at),
            )
        return Grant(granted_at=now, expires_at=expires_at, revoked_at=None, sealed_refresh_token=sealed)

    def revoke_grant(self, tenant_id: str, user_id: str) -> bool:
        """Revoke the user's grant (kept as revoked, so callers can tell it from "never signed in")."""
        with self._db.transaction() as conn:
            self._require_user(conn, tenant_id, user_id)
            cursor = conn.execute(
                "UPDATE grants SET revoked_at = ? WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL",
                (self._now(), tenant_id, user_id),
            )
        return cursor.rowcount > 0

    def set_policy(self, tenant_id: str, policy: TenantPolicy) -> TenantPolicy:
        audiences = None if policy.allowed_audiences is None else json.dumps(list(policy.allowed_audiences))
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO tenant_policies (tenant_id, deny, allowed_audiences)"
                " VALUES (?, ?, ?)",
                (tenant_id, int(policy.deny), audiences),
            )
        return policy

    def lookup(self, tenant_id: str, user_id: str) -> tuple[TenantPolicy, User | None, Grant | None]:
        """Everything issue-token decides on, in one query (it runs on every token)."""
        with self._db.reading() as conn:
            row = conn.execute(_LOOKUP, (tenant_id, user_id)).fetchone()
        policy = TenantPolicy() if row["policy_tenant"] is None else _policy_of(row)
        user = None if row["user_created"] is None else _user_of(row)
        return policy, user, _grant_of(row)

    def list_users(self, limit: int) -> list[User]:
        """Up to `limit` users, oldest first (the sign-in page offers them to pick from)."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT tenant_id, user_id, email, name, token_profile, subject FROM users"
                " ORDER BY created_at, rowid LIMIT ?",
                (limit,),
            ).fetchall()
        return [User(**dict(row)) for row in rows]

    def accounts(self, limit: int) -> list[tuple[User, Grant | None]]:
        """Up to `limit` users with their SSO grant (None: never signed in), by tenant then user."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT u.tenant_id, u.user_id, u.email, u.name, u.token_profile, u.subject,"
                " g.sealed_refresh_token, g.granted_at, g.expires_at, g.revoked_at"
                " FROM users u LEFT JOIN grants g ON g.tenant_id = u.tenant_id AND g.user_id = u.user_id"
                " ORDER BY u.tenant_id, u.user_id LIMIT ?",
                (limit,),
            ).fetchall()
        return [(_user_of(row), _grant_of(row)) for row in rows]

    def policies(self) -> dict[str, TenantPolicy]:
        """Every tenant that has a policy set, with it."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT tenant_id, deny, allowed_audiences FROM tenant_policies ORDER BY tenant_id"
            ).fetchall()
        return {row["tenant_id"]: _policy_of(row) for row in rows}

    def open_grant(self, user: User, grant: Grant) -> str:
        """The stored refresh token in the clear; `SealedDataError` if it was tampered with."""
        context = _grant_context(user.tenant_id, user.user_id)
        return self._cipher.open(grant.sealed_refresh_token, context).decode()

    def _now(self) -> int:
        return int(self._clock())

    @staticmethod
    def _require_user(conn: sqlite3.Connection, tenant_id: str, user_id: str) -> None:
        row = conn.execute(
            "SELECT 1 FROM users WHERE tenant_id = ? AND user_id = ?", (tenant_id, user_id)
        ).fetchone()
        if row is None:
            raise UnknownUserError(f"no user {user_id!r} in tenant {tenant_id!r}")
