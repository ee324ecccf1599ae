"""MCP tool providers: where a server is, how its calls identify the user, and their SQLite store."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from client_runtime.crypto import DataCipher, DecryptionError, TamperedRecordError
from client_runtime.database import Database, require_table_version, set_table_version
from client_runtime.errors import MCPProviderConfigError
from client_runtime.modes import IdentityMode
from client_runtime.urls import ALLOW_INSECURE_HTTP, needs_insecure_http

__all__ = ["MCPProvider", "ProviderNotFoundError", "ProviderStore"]

AUTHORIZATION = "Authorization"
# RFC 9110 field-name: a token of visible ASCII without separators.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _check_header(name: str, value: str | None = None) -> None:
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise MCPProviderConfigError(f"invalid HTTP header name {name!r:.80}")
    if value is not None and (not isinstance(value, str) or any(c in value for c in "\r\n\0")):
        raise MCPProviderConfigError(f"header {name} has a value that is not a single-line string")


def _check_server_url(url: str, *, allow_insecure_http: bool) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise MCPProviderConfigError(f"server_url must be an absolute http(s) URL, got {url!r:.200}")
    if parts.username or parts.password:
        raise MCPProviderConfigError("server_url must not carry credentials; use static_headers")
    if needs_insecure_http(url) and not allow_insecure_http:
        raise MCPProviderConfigError(
            f"server_url {url!r:.200} is plain http to a host off loopback, so headers and tokens would"
            f" travel in clear text; use https, or set {ALLOW_INSECURE_HTTP}=True on the provider"
        )


@dataclass(frozen=True)
class MCPProvider:
    """One remote MCP server as a tenant configured it.

    `server_url` is also the audience of forwarded tokens. The forwarded token goes in
    `token_header`: in `Authorization` as `Bearer <token>` (replacing any static
    Authorization), or raw in a custom header such as `X-Dify-SSO-Token`, which leaves a
    static `Authorization` in place. With `enterprise_enabled` false the deployment cannot
    forward identities, so a stored non-`off` mode acts as `off` and the issuer is never called.
    `server_url` must be https unless its host is loopback or `allow_insecure_http` is set.
    With `session_reuse` false every call opens a fresh MCP session (for a server whose session
    state must not carry over between calls); otherwise an open runtime reuses one per user.
    """

    provider_id: str
    tenant_id: str
    server_url: str
    name: str = ""
    identity_mode: IdentityMode = IdentityMode.OFF
    static_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    token_header: str = AUTHORIZATION
    enterprise_enabled: bool = True
    allow_insecure_http: bool = False
    session_reuse: bool = True

    def __post_init__(self) -> None:
        for label in ("provider_id", "tenant_id"):
            value = getattr(self, label)
            if not isinstance(value, str) or not value:
                raise MCPProviderConfigError(f"{label} must be a non-empty string")
        if not isinstance(self.allow_insecure_http, bool):
            raise MCPProviderConfigError(f"{ALLOW_INSECURE_HTTP} must be a bool")
        _check_server_url(self.server_url, allow_insecure_http=self.allow_insecure_http)
        object.__setattr__(self, "identity_mode", IdentityMode.parse(self.identity_mode))
        _check_header(self.token_header)
        if not isinstance(self.static_headers, Mapping):
            raise MCPProviderConfigError("static_headers must be a mapping of header name to value")
        for name, value in self.static_headers.items():
            _check_header(name, value)
        object.__setattr__(self, "static_headers", MappingProxyType(dict(self.static_headers)))
        if not isinstance(self.enterprise_enabled, bool):
            raise MCPProviderConfigError("enterprise_enabled must be a bool")
        if not isinstance(self.session_reuse, bool):
            raise MCPProviderConfigError("session_reuse must be a bool")

    @property
    def effective_mode(self) -> IdentityMode:
        """The mode calls actually use: the stored one, or `off` where forwarding is unavailable."""
        return self.identity_mode if self.enterprise_enabled else IdentityMode.OFF

    @property
    def token_in_authorization(self) -> bool:
        return self.token_header.lower() == AUTHORIZATION.lower()


class ProviderNotFoundError(LookupError):
    """No provider with that id in that tenant."""


_TABLE = "mcp_providers"
# v1 sealed the static headers to (tenant, provider id) only, so server_url could be edited in the
# file and a stored API key went wherever it pointed. v2 seals every field that decides where and how.
_VERSION = 2
_COLUMNS = (
    "tenant_id",
    "provider_id",
    "name",
    "server_url",
    "identity_mode",
    "encrypted_static_headers",
    "token_header",
    "enterprise_enabled",
    "created_at",
    "updated_at",
    "allow_insecure_http",
    "session_reuse",
)
_SCHEMA = """
CREATE TABLE mcp_providers (
    tenant_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    name TEXT NOT NULL,
    server_url TEXT NOT NULL,
    identity_mode TEXT NOT NULL,
    encrypted_static_headers BLOB NOT NULL,
    token_header TEXT NOT NULL,
    enterprise_enabled INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    allow_insecure_http INTEGER NOT NULL DEFAULT 0,
    session_reuse INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, provider_id)
)
"""
_INSERT = (
    "INSERT INTO mcp_providers (tenant_id, provider_id, name, server_url, identity_mode,"
    " encrypted_static_headers, token_header, enterprise_enabled, created_at, updated_at,"
    " allow_insecure_http, session_reuse) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _aad(row: Mapping[str, object]) -> bytes:
    """The associated data of a row's sealed headers: every stored field but the timestamps."""
    return json.dumps(
        [
            _TABLE,
            _VERSION,
            str(row["tenant_id"]),
            str(row["provider_id"]),
            str(row["name"]),
            str(row["server_url"]),
            str(row["identity_mode"]),
            str(row["token_header"]),
            bool(row["enterprise_enabled"]),
            bool(row["allow_insecure_http"]),
            bool(row["session_reuse"]),
        ]
    ).encode()


def _fields(provider: MCPProvider) -> dict[str, object]:
    """A provider's stored columns, as `_aad` reads them back."""
    return {
        "tenant_id": provider.tenant_id,
        "provider_id": provider.provider_id,
        "name": provider.name,
        "server_url": provider.server_url,
        "identity_mode": provider.identity_mode.value,
        "token_header": provider.token_header,
        "enterprise_enabled": int(provider.enterprise_enabled),
        "allow_insecure_http": int(provider.allow_insecure_http),
        "session_reuse": int(provider.session_reuse),
    }


def _seal(cipher: DataCipher, provider: MCPProvider) -> bytes:
    plaintext = json.dumps(dict(provider.static_headers)).encode()
    return cipher.encrypt(plaintext, associated_data=_aad(_fields(provider)))


def _unseal(cipher: DataCipher, row: Mapping[str, object]) -> MCPProvider:
    """The provider a row holds, once its seal shows no stored field was changed outside the store."""
    try:
        headers = cipher.decrypt(
            bytes(row["encrypted_static_headers"]),  # type: ignore[arg-type]
            associated_data=_aad(row),
        )
    except DecryptionError:
        raise TamperedRecordError(
            f"stored provider {str(row['provider_id'])!r:.80} of tenant {str(row['tenant_id'])!r:.80} does"
            " not match its seal: its server_url, token_header, identity_mode or another field was"
            " changed outside client_runtime (or the data key is wrong); refusing to use it"
        ) from None
    return MCPProvider(
        provider_id=str(row["provider_id"]),
        tenant_id=str(row["tenant_id"]),
        name=str(row["name"]),
        server_url=str(row["server_url"]),
        identity_mode=IdentityMode.parse(row["identity_mode"]),
        static_headers=json.loads(headers),
        token_header=str(row["token_header"]),
        enterprise_enabled=bool(row["enterprise_enabled"]),
        allow_insecure_http=bool(row["allow_insecure_http"]),
        session_reuse=bool(row["session_reuse"]),
    )


def reseal_v1_providers(conn: sqlite3.Connection, cipher: DataCipher) -> int:
    """Re-seal v1 rows under v2, trusting their unauthenticated fields as they are now; the count."""
    conn.execute("ALTER TABLE mcp_providers ADD COLUMN allow_insecure_http INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE mcp_providers ADD COLUMN session_reuse INTEGER NOT NULL DEFAULT 1")
    rows = conn.execute("SELECT * FROM mcp_providers").fetchall()
    for row in rows:
        legacy_aad = json.dumps([_TABLE, str(row["tenant_id"]), str(row["provider_id"])]).encode()
        try:
            headers = cipher.decrypt(bytes(row["encrypted_static_headers"]), associated_data=legacy_aad)
        except DecryptionError:
            raise TamperedRecordError(
                f"legacy provider {str(row['provider_id'])!r:.80} of tenant {str(row['tenant_id'])!r:.80}"
                " does not decrypt under this data key; nothing was re-sealed"
            ) from None
        fields = {column: row[column] for column in row.keys()}  # noqa: SIM118 (sqlite3.Row)
        # v1 accepted plain http anywhere; keep such a provider working, now as an explicit opt-in.
        fields["allow_insecure_http"] = int(needs_insecure_http(str(row["server_url"])))
        sealed = cipher.encrypt(headers, associated_data=_aad(fields))
        conn.execute(
            "UPDATE mcp_providers SET encrypted_static_headers = ?, allow_insecure_http = ?"
            " WHERE tenant_id = ? AND provider_id = ?",
            (sealed, fields["allow_insecure_http"], row["tenant_id"], row["provider_id"]),
        )
    set_table_version(conn, _TABLE, _VERSION)
    return len(rows)


class ProviderStore:
    """Providers in SQLite; static headers (which often hold API keys) are encrypted at rest.

    The seal also authenticates every other stored field (`server_url`, `token_header`,
    `identity_mode`, ...): a row changed outside the store raises `TamperedRecordError` when read.
    A table written by a client_runtime before that raises `LegacyRecordsError` here until
    `reseal_legacy_rows` has upgraded it.
    """

    def __init__(self, database: Database, cipher: DataCipher) -> None:
        self._db = database
        self._cipher = cipher
        with self._db.transaction() as conn:
            if not require_table_version(conn, _TABLE, _VERSION):
                conn.execute("DROP TABLE IF EXISTS mcp_providers")  # absent, or an empty older table
                conn.execute(_SCHEMA)
                set_table_version(conn, _TABLE, _VERSION)

    def _from_row(self, row: Mapping[str, object]) -> MCPProvider:
        return _unseal(self._cipher, row)

    def create(self, provider: MCPProvider) -> MCPProvider:
        """Store a new provider; a duplicate (tenant_id, provider_id) raises `MCPProviderConfigError`."""
        now = time.time()
        with self._db.transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM mcp_providers WHERE tenant_id = ? AND provider_id = ?",
                (provider.tenant_id, provider.provider_id),
            ).fetchone()
            if exists:
                raise MCPProviderConfigError(
                    f"provider {provider.provider_id!r} already exists in this tenant"
                )
            row = {
                **_fields(provider),
                "encrypted_static_headers": _seal(self._cipher, provider),
                "created_at": now,
                "updated_at": now,
            }
            conn.execute(_INSERT, tuple(row[column] for column in _COLUMNS))
        return provider

    def get(self, tenant_id: str, provider_id: str) -> MCPProvider | None:
        """The provider, or None; a stored unknown identity mode raises `UnknownIdentityModeError`."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM mcp_providers WHERE tenant_id = ? AND provider_id = ?",
                (tenant_id, provider_id),
            ).fetchone()
        return None if row is None else self._from_row(row)

    def list_providers(self, tenant_id: str) -> list[MCPProvider]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM mcp_providers WHERE tenant_id = ? ORDER BY provider_id", (tenant_id,)
            ).fetchall()
        return [self._from_row(row) for row in rows]

    def update(
        self,
        tenant_id: str,
        provider_id: str,
        *,
        name: str | None = None,
        server_url: str | None = None,
        identity_mode: IdentityMode | str | None = None,
        static_headers: Mapping[str, str] | None = None,
        token_header: str | None = None,
        enterprise_enabled: bool | None = None,
        allow_insecure_http: bool | None = None,
        session_reuse: bool | None = None,
    ) -> MCPProvider:
        """Change the given fields; every field left as None keeps its stored value.

        So a partial update (say, a new URL) can never reset a provider's mode to `off`.
        """
        changes = {
            "name": name,
            "server_url": server_url,
            "identity_mode": identity_mode,
            "static_headers": static_headers,
            "token_header": token_header,
            "enterprise_enabled": enterprise_enabled,
            "allow_insecure_http": allow_insecure_http,
            "session_reuse": session_reuse,
        }
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM mcp_providers WHERE tenant_id = ? AND provider_id = ?",
                (tenant_id, provider_id),
            ).fetchone()
            if row is None:
                raise ProviderNotFoundError(f"no provider {provider_id!r} in tenant {tenant_id!r}")
            updated = dataclasses.replace(
                self._from_row(row), **{key: value for key, value in changes.items() if value is not None}
            )
            fields = _fields(updated)
            conn.execute(
                "UPDATE mcp_providers SET name = ?, server_url = ?, identity_mode = ?,"
                " encrypted_static_headers = ?, token_header = ?, enterprise_enabled = ?,"
                " allow_insecure_http = ?, session_reuse = ?, updated_at = ?"
                " WHERE tenant_id = ? AND provider_id = ?",
                (
                    fields["name"],
                    fields["server_url"],
                    fields["identity_mode"],
                    _seal(self._cipher, updated),
                    fields["token_header"],
                    fields["enterprise_enabled"],
                    fields["allow_insecure_http"],
                    fields["session_reuse"],
                    time.time(),
                    tenant_id,
                    provider_id,
                ),
            )
        return updated

    def delete(self, tenant_id: str, provider_id: str) -> bool:
        """Remove the provider; False if there was none."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM mcp_providers WHERE tenant_id = ? AND provider_id = ?", (tenant_id, provider_id)
            )
        return cursor.rowcount > 0
