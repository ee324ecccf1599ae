"""End users' own credentials for tool providers (the `end_user_credential` mode), encrypted at rest."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

from client_runtime.crypto import DataCipher
from client_runtime.database import Database
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
    """One end user's credential for one provider. Ids identify; names are hints and may repeat."""

    id: str
    tenant_id: str
    end_user_id: str
    provider: str
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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS end_user_credentials (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    end_user_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    name TEXT NOT NULL,
    encrypted_credentials BLOB NOT NULL,
    credential_type TEXT NOT NULL CHECK (credential_type IN ('api-key', 'oauth2')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT -1
)
"""
_INDEX = (
    "CREATE INDEX IF NOT EXISTS end_user_credentials_owner"
    " ON end_user_credentials (tenant_id, end_user_id, provider)"
)


class EndUserCredentialStore:
    """CRUD for end-user credentials in SQLite; the credential itself is AES-GCM encrypted per row."""

    def __init__(self, database: Database, cipher: DataCipher) -> None:
        self._db = database
        self._cipher = cipher
        with self._db.transaction() as conn:
            conn.execute(_SCHEMA)
            conn.execute(_INDEX)

    @staticmethod
    def _aad(
        credential_id: str, tenant_id: str, end_user_id: str, provider: str, credential_type: str
    ) -> bytes:
        # Binding the owner into the ciphertext means a row edited to point at another user does not decrypt.
        return json.dumps(
            ["end_user_credentials", credential_id, tenant_id, end_user_id, provider, credential_type]
        ).encode()

    def _from_row(self, row: Mapping[str, object]) -> EndUserCredential:
        credential_type = CredentialType(str(row["credential_type"]))
        plaintext = self._cipher.decrypt(
            bytes(row["encrypted_credentials"]),  # type: ignore[arg-type]
            associated_data=self._aad(
                str(row["id"]),
                str(row["tenant_id"]),
                str(row["end_user_id"]),
                str(row["provider"]),
                credential_type,
            ),
        )
        return EndUserCredential(
            id=str(row["id"]),
            tenant_id=str(row["tenant_id"]),
            end_user_id=str(row["end_user_id"]),
            provider=str(row["provider"]),
            name=str(row["name"]),
            credential_type=credential_type,
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
        credential_type: CredentialType | str = CredentialType.API_KEY,
        name: str = DEFAULT_CREDENTIAL_NAME,
        expires_at: int = NEVER_EXPIRES,
    ) -> EndUserCredential:
        """Store a new credential under a fresh uuid; several may share a name."""
        credential_type = CredentialType(credential_type)
        _validate(credential_type, credentials, expires_at)
        credential_id = str(uuid.uuid4())
        now = datetime.now(UTC).isoformat()
        sealed = self._cipher.encrypt(
            json.dumps(dict(credentials)).encode(),
            associated_data=self._aad(credential_id, tenant_id, end_user_id, provider, credential_type),
        )
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO end_user_credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    credential_id,
                    tenant_id,
                    end_user_id,
                    provider,
                    name,
                    sealed,
                    credential_type.value,
                    now,
                    now,
                    expires_at,
                ),
            )
        return self.get(credential_id)

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
        sealed = self._cipher.encrypt(
            json.dumps(dict(new_credentials)).encode(),
            associated_data=self._aad(
                current.id, current.tenant_id, current.end_user_id, current.provider, current.credential_type
            ),
        )
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE end_user_credentials SET name = ?, encrypted_credentials = ?, expires_at = ?,"
                " updated_at = ? WHERE id = ?",
                (
                    current.name if name is None else name,
                    sealed,
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
        credential_id: str | None = None,
        now: float | None = None,
    ) -> EndUserCredential:
        """The credential a call for this user and provider sends, or `MCPCredentialRequiredError`.

        With `credential_id`, exactly that one, and only if it belongs to this tenant, user and
        provider (an id from another user is treated as missing). Without, the most recently
        updated unexpired one.
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
        for credential in candidates:
            if not credential.is_expired(now):
                return credential
        raise MCPCredentialRequiredError(
            "the user's credential for this provider has expired; the user must reconnect their account",
            reason="expired",
        )
