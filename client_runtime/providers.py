"""MCP tool providers: where a server is, how its calls identify the user, and their SQLite store."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

from client_runtime.crypto import DataCipher
from client_runtime.database import Database
from client_runtime.errors import MCPProviderConfigError
from client_runtime.modes import IdentityMode

__all__ = ["MCPProvider", "ProviderNotFoundError", "ProviderStore"]

AUTHORIZATION = "Authorization"
# RFC 9110 field-name: a token of visible ASCII without separators.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _check_header(name: str, value: str | None = None) -> None:
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise MCPProviderConfigError(f"invalid HTTP header name {name!r:.80}")
    if value is not None and (not isinstance(value, str) or any(c in value for c in "\r\n\0")):
        raise MCPProviderConfigError(f"header {name} has a value that is not a single-line string")


def _check_server_url(url: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise MCPProviderConfigError(f"server_url must be an absolute http(s) URL, got {url!r:.200}")
    if parts.username or parts.password:
        raise MCPProviderConfigError("server_url must not carry credentials; use static_headers")


@dataclass(frozen=True)
class MCPProvider:
    """One remote MCP server as a tenant configured it.

    `server_url` is also the audience of forwarded tokens. The forwarded token goes in
    `token_header`: in `Authorization` as `Bearer <token>` (replacing any static
    Authorization), or raw in a custom header such as `X-Dify-SSO-Token`, which leaves a
    static `Authorization` in place. With `enterprise_enabled` false the deployment cannot
    forward identities, so a stored non-`off` mode acts as `off` and the issuer is never called.
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
    session_reuse: bool = True

    def __post_init__(self) -> None:
        for label in ("provider_id", "tenant_id"):
            value = getattr(self, label)
            if not isinstance(value, str) or not value:
                raise MCPProviderConfigError(f"{label} must be a non-empty string")
        _check_server_url(self.server_url)
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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS mcp_providers (
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
    PRIMARY KEY (tenant_id, provider_id)
)
"""
# Columns added after the first schema, appended (in this order) to tables created before them.
_ADDED_COLUMNS = {"session_reuse": "INTEGER NOT NULL DEFAULT 1"}


class ProviderStore:
    """Providers in SQLite; static headers (which often hold API keys) are encrypted at rest."""

    def __init__(self, database: Database, cipher: DataCipher) -> None:
        self._db = database
        self._cipher = cipher
        with self._db.transaction() as conn:
            conn.execute(_SCHEMA)
            present = {row[1] for row in conn.execute("PRAGMA table_info(mcp_providers)")}
            for name, definition in _ADDED_COLUMNS.items():
                if name not in present:
                    conn.execute(f"ALTER TABLE mcp_providers ADD COLUMN {name} {definition}")

    def _aad(self, tenant_id: str, provider_id: str) -> bytes:
        return json.dumps(["mcp_providers", tenant_id, provider_id]).encode()

    def _seal_headers(self, provider: MCPProvider) -> bytes:
        plaintext = json.dumps(dict(provider.static_headers)).encode()
        return self._cipher.encrypt(
            plaintext, associated_data=self._aad(provider.tenant_id, provider.provider_id)
        )

    def _from_row(self, row: Mapping[str, object]) -> MCPProvider:
        tenant_id, provider_id = str(row["tenant_id"]), str(row["provider_id"])
        headers = self._cipher.decrypt(
            bytes(row["encrypted_static_headers"]),  # type: ignore[arg-type]
            associated_data=self._aad(tenant_id, provider_id),
        )
        return MCPProvider(
            provider_id=provider_id,
            tenant_id=tenant_id,
            name=str(row["name"]),
            server_url=str(row["server_url"]),
            identity_mode=IdentityMode.parse(row["identity_mode"]),
            static_headers=json.loads(headers),
            token_header=str(row["token_header"]),
            enterprise_enabled=bool(row["enterprise_enabled"]),
            session_reuse=bool(row["session_reuse"]),
        )

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
            conn.execute(
                "INSERT INTO mcp_providers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    provider.tenant_id,
                    provider.provider_id,
                    provider.name,
                    provider.server_url,
                    provider.identity_mode.value,
                    self._seal_headers(provider),
                    provider.token_header,
                    int(provider.enterprise_enabled),
                    now,
                    now,
                    int(provider.session_reuse),
                ),
            )
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
            conn.execute(
                "UPDATE mcp_providers SET name = ?, server_url = ?, identity_mode = ?,"
                " encrypted_static_headers = ?, token_header = ?, enterprise_enabled = ?, updated_at = ?,"
                " session_reuse = ?"
                " WHERE tenant_id = ? AND provider_id = ?",
                (
                    updated.name,
                    updated.server_url,
                    updated.identity_mode.value,
                    self._seal_headers(updated),
                    updated.token_header,
                    int(updated.enterprise_enabled),
                    time.time(),
                    int(updated.session_reuse),
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
