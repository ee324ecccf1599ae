"""End users' own credentials for tool providers (the `end_user_credential` mode), encrypted at rest."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

from client_runtime.crypto import DataCipher, DecryptionError, TamperedRecordError
from client_runtime.database import Database, require_table_version, set_table_version
from client_runtime.errors import MCPCredentialRequiredError

__all__ = ["CredentialNotFoundError", "CredentialType", "EndUserCredential", "EndUserCredentialStore"]

DEFAULT_CREDENTIAL_NAME = "API KEY 1"
NEVER_EXPIRES = -1


class CredentialType(StrEnum):
    """`api-key` is sent in the provider's token header; `oauth2` as `Authorization: Bearer`."""

    API_KEY = "api-key"
    OAUTH2 = "oauth2"


# The field of `credentials` each type sends to the MCP server.
_SECRET_FIELD = {CredentialType.API_KEY: "api_key", CredentialType.OAUTH2: "access_token"}


class CredentialNotFoundError(LookupError):
    """No credential with that id."""


@dataclass(frozen=True)
class EndUserCredential:
    """One end user's credential for one provider. Ids identify; names are hints and may repeat.

    `server_url` is the provider URL the user connected it for: it is only ever sent there.
    """

    id: str
    tenant_id: str
    end_user_id: str
    provider: str
    server_url: str
    name: str
    credential_type: CredentialType
    credentials: Mapping[str, str] = field(repr=False)
    created_at: datetime
    updated_at: datetime
    expires_at: int = NEVER_EXPIRES

    def is_expired(self, now: float | None = None) -> bool:
        """Whether it has expired (`expires_at` -1 never does)."""
        if self.expires_at == NEVER_EXPIRES:
            return False
        return self.expires_at <= (time.time() if now is None else now)

    @property
    def secret(self) -> str:
        """The value sent to the MCP server: the API key, or the OAuth2 access token."""
        return self.credentials[_SECRET_FIELD[self.credential_type]]


def _validate(credential_type: CredentialType, credentials: Mapping[str, str], expires_at: int) -> None:
    if not isinstance(credentials, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in credentials.items()
    ):
        raise ValueError("credentials must be a mapping of strings to strings")
    secret_field = _SECRET_FIELD[credential_type]
    secret = credentials.get(secret_field)
    if not secret or any(c in secret for c in "\r\n\0"):
        raise ValueError(f"{credential_type.value} credentials need a non-empty single-line {secret_field!r}")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int) or expires_at < NEVER_EXPIRES:
        raise ValueError("expires_at must be unix seconds (int) or -1 for never")


_TABLE = "end_user_credentials"
# v1 sealed a credential to its owner and provider id but not to a URL, so a provider whose
# server_url changed sent its users' keys to the new host. v2 binds the URL and every other field.
_VERSION = 2
_COLUMNS = (
    "id",
    "tenant_id",
    "end_user_id",
    "provider",
    "name",
    "encrypted_credentials",
    "credential_type",
    "created_at",
    "updated_at",
    "expires_at",
    "server_url",
)
_SCHEMA = """
CREATE TABLE end_user_credentials (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    end_user_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    encrypted_credentials BLOB NOT NULL,
    credential_type TEXT NOT NULL CHECK (credential_type IN ('api-key', 'oauth2')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT -1,
    server_url TEXT NOT NULL DEFAULT ''
)
"""
_INDEX = (
    "CREATE INDEX IF NOT EXISTS end_user_credentials_owner"
    " ON end_user_credentials (tenant_id, end_user_id, provider)"
)
_INSERT = (
    "INSERT INTO end_user_credentials (id, tenant_id, end_user_id, provider, name, encrypted_credentials,"
    " credential_type, created_at, updated_at, expires_at, server_url)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _aad(row: Mapping[str, object]) -> bytes:
    """The associated data of a sealed credential: every stored field but the timestamps.

    So a row edited to point at another user, provider or URL, or never to expire, does not decrypt.
    """
    return json.dumps(
        [
            _TABLE,
            _VERSION,
            str(row["id"]),
            str(row["tenant_id"]),
            str(row["end_user_id"]),
            str(row["provider"]),
            str(row["server_url"]),
            str(row["name"]),
            str(row["credential_type"]),
            int(row["expires_at"]),  # type: ignore[call-overload]
        ]
    ).encode()


def _tampered(row: Mapping[str, object], why: str) -> TamperedRecordError:
    return TamperedRecordError(f"stored end-user credential {str(row['id'])!r:.80} {why}; refusing to use it")


def reseal_v1_credentials(
    conn: sqlite3.Connection, cipher: DataCipher, server_url_of: Callable[[str, str], str | None]
) -> int:
    """Re-seal v1 rows under v2, each bound to its provider's current URL (`server_url_of(tenant,
    provider)`); a credential whose provider is gone gets no URL, so it is never sent. The count."""
    conn.execute("ALTER TABLE end_user_credentials ADD COLUMN server_url TEXT NOT NULL DEFAULT ''")
    rows = conn.execute("SELECT * FROM end_user_credentials").fetchall()
    for row in rows:
        fields = {column: row[column] for column in row.keys()}  # noqa: SIM118 (sqlite3.Row)
        owner = ("id", "tenant_id", "end_user_id", "provider", "credential_type")
        legacy_aad = json.dumps([_TABLE, *(str(row[column]) for column in owner)]).encode()
        try:
            plaintext = cipher.decrypt(bytes(row["encrypted_credentials"]), associated_data=legacy_aad)
        except DecryptionError:
            raise _tampered(row, "does not decrypt under this data key; nothing was re-sealed") from None
        fields["server_url"] = server_url_of(str(row["tenant_id"]), str(row["provider"])) or ""
        conn.execute(
            "UPDATE end_user_credentials SET encrypted_credentials = ?, server_url = ? WHERE id = ?",
            (cipher.encrypt(plaintext, associated_data=_aad(fields)), fields["server_url"], row["id"]),
        )
    set_table_version(conn, _TABLE, _VERSION)
    return len(rows)


class EndUserCredentialStore:
    """CRUD for end-user credentials in SQLite; the credential itself is AES-GCM encrypted per row.

    The seal binds every stored field (owner, provider, `server_url`, type, expiry): a row changed
    outside the store raises `TamperedRecordError` when read. A table written by a client_runtime
    before that raises `LegacyRecordsError` here until `reseal_legacy_rows` has upgraded it.
    """

    def __init__(self, database: Database, cipher: DataCipher) -> None:
        self._db = database
        self._cipher = cipher
        with self._db.transaction() as conn:
            if not require_table_version(conn, _TABLE, _VERSION):
                conn.execute("DROP TABLE IF EXISTS end_user_credentials")  # absent, or an empty older table
                conn.execute(_SCHEMA)
                set_table_version(conn, _TABLE, _VERSION)
            conn.execute(_INDEX)

    def _seal(self, row: Mapping[str, object], credentials: Mapping[str, str]) -> bytes:
        return self._cipher.encrypt(json.dumps(dict(credentials)).encode(), associated_data=_aad(row))

    def _from_row(self, row: Mapping[str, object]) -> EndUserCredential:
        try:
            plaintext = self._cipher.decrypt(
                bytes(row["encrypted_credentials"]),  # type: ignore[arg-type]
                associated_data=_aad(row),
            )
        except DecryptionError:
            raise _tampered(
                row,
                "does not match its seal: its owner, provider, server_url, expiry or another field was"
                " changed outside client_runtime (or the data key is wrong)",
            ) from None
        return EndUserCredential(
            id=str(row["id"]),
            tenant_id=str(row["tenant_id"]),
            end_user_id=str(row["end_user_id"]),
            provider=str(row["provider"]),
            server_url=str(row["server_url"]),
            name=str(row["name"]),
            credential_type=CredentialType(str(row["credential_type"])),
            credentials=MappingProxyType(json.loads(plaintext)),
            created_at=datetime.fromisoformat(str(row["created_at"])),
            updated_at=datetime.fromisoformat(str(row["updated_at"])),
            expires_at=int(row["expires_at"]),  # type: ignore[call-overload]
        )

    def create(
        self,
        tenant_id: str,
        end_user_id: str,
        provider: str,
        credentials: Mapping[str, str],
        *,
        server_url: str,
        credential_type: CredentialType | str = CredentialType.API_KEY,
        name: str = DEFAULT_CREDENTIAL_NAME,
        expires_at: int = NEVER_EXPIRES,
    ) -> EndUserCredential:
        """Store a new credential under a fresh uuid; several may share a name.

        `server_url` is the provider's URL the user connects it for: `usable` hands it out only
        for a provider at that same URL.
        """
        credential_type = CredentialType(credential_type)
        _validate(credential_type, credentials, expires_at)
        if not isinstance(server_url, str) or not server_url:
            raise ValueError("server_url must be the provider's URL the credential is for")
        now = datetime.now(UTC).isoformat()
        row: dict[str, object] = {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant_id,
            "end_user_id": end_user_id,
            "provider": provider,
            "server_url": server_url,
            "name": name,
            "credential_type": credential_type.value,
            "created_at": now,
            "updated_at": now,
            "expires_at": expires_at,
        }
        row["encrypted_credentials"] = self._seal(row, credentials)
        with self._db.transaction() as conn:
            conn.execute(_INSERT, tuple(row[column] for column in _COLUMNS))
        return self.get(str(row["id"]))

    def get(self, credential_id: str) -> EndUserCredential:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT * FROM end_user_credentials WHERE id = ?", (credential_id,)).fetchone()
        if row is None:
            raise CredentialNotFoundError(f"no credential {credential_id!r}")
        return self._from_row(row)

    def list_credentials(
        self, tenant_id: str, end_user_id: str, provider: str | None = None
    ) -> list[EndUserCredential]:
        """The user's credentials (for one provider if given), most recently updated first."""
        query = "SELECT * FROM end_user_credentials WHERE tenant_id = ? AND end_user_id = ?"
        params: tuple[str, ...] = (tenant_id, end_user_id)
        if provider is not None:
            query += " AND provider = ?"
            params += (provider,)
        with self._db.transaction() as conn:
            rows = conn.execute(query + " ORDER BY updated_at DESC, rowid DESC", params).fetchall()
        return [self._from_row(row) for row in rows]

    def update(
        self,
        credential_id: str,
        *,
        name: str | None = None,
        credentials: Mapping[str, str] | None = None,
        expires_at: int | None = None,
    ) -> EndUserCredential:
        """Change the given fields; None leaves a field as stored."""
        current = self.get(credential_id)
        new_credentials = current.credentials if credentials is None else credentials
        new_expires_at = current.expires_at if expires_at is None else expires_at
        _validate(current.credential_type, new_credentials, new_expires_at)
        row: dict[str, object] = {
            "id": current.id,
            "tenant_id": current.tenant_id,
            "end_user_id": current.end_user_id,
            "provider": current.provider,
            "server_url": current.server_url,
            "name": current.name if name is None else name,
            "credential_type": current.credential_type.value,
            "expires_at": new_expires_at,
        }
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE end_user_credentials SET name = ?, encrypted_credentials = ?, expires_at = ?,"
                " updated_at = ? WHERE id = ?",
                (
                    row["name"],
                    self._seal(row, new_credentials),
                    new_expires_at,
                    datetime.now(UTC).isoformat(),
                    credential_id,
                ),
            )
        return self.get(credential_id)

    def delete(self, credential_id: str) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute("DELETE FROM end_user_credentials WHERE id = ?", (credential_id,))
        return cursor.rowcount > 0

    def usable(
        self,
        tenant_id: str,
        end_user_id: str,
        provider: str,
        *,
        server_url: str,
        credential_id: str | None = None,
        now: float | None = None,
    ) -> EndUserCredential:
        """The credential a call for this user and provider sends, or `MCPCredentialRequiredError`.

        Only a credential connected for this `server_url` (the provider's, now) qualifies, so a
        provider moved to another URL never carries its users' credentials there (`reason`
        "server_changed": they reconnect). With `credential_id`, exactly that one, and only if it
        belongs to this tenant, user and provider (an id from another user is treated as
        missing). Without, the most recently updated unexpired one.
        """
        now = time.time() if now is None else now
        if credential_id is not None:
            try:
                candidates = [self.get(credential_id)]
            except CredentialNotFoundError:
                candidates = []
            candidates = [
                c
                for c in candidates
                if (c.tenant_id, c.end_user_id, c.provider) == (tenant_id, end_user_id, provider)
            ]
        else:
            candidates = self.list_credentials(tenant_id, end_user_id, provider)
        if not candidates:
            raise MCPCredentialRequiredError(
                "no stored credential for this user and provider; the user must connect their account",
                reason="missing",
            )
        for_this_url = [c for c in candidates if c.server_url == server_url]
        if not for_this_url:
            raise MCPCredentialRequiredError(
                "the user's credential was connected for another server URL of this provider;"
                " the user must reconnect their account",
                reason="server_changed",
            )
        for credential in for_this_url:
            if not credential.is_expired(now):
                return credential
        raise MCPCredentialRequiredError(
            "the user's credential for this provider has expired; the user must reconnect their account",
            reason="expired",
        )
