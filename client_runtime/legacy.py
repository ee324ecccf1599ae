"""The one-time upgrade of rows sealed by a client_runtime that did not authenticate every field."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from client_runtime.credentials import reseal_v1_credentials
from client_runtime.crypto import DataCipher
from client_runtime.database import Database, table_version
from client_runtime.providers import reseal_v1_providers

__all__ = ["reseal_legacy_rows"]


def _provider_url(conn: sqlite3.Connection) -> Callable[[str, str], str | None]:
    def server_url_of(tenant_id: str, provider_id: str) -> str | None:
        if table_version(conn, "mcp_providers") is None:
            return None
        row = conn.execute(
            "SELECT server_url FROM mcp_providers WHERE tenant_id = ? AND provider_id = ?",
            (tenant_id, provider_id),
        ).fetchone()
        return None if row is None else str(row[0])

    return server_url_of


def reseal_legacy_rows(database: Database, cipher: DataCipher) -> int:
    """Re-seal older rows so the seal covers every field; the number of rows re-sealed.

    Older rows left `server_url` and the like unauthenticated, so this trusts them as they are
    in the file now: run it once, after checking the providers' URLs, never on every start (a
    store refuses older rows with `LegacyRecordsError` until then, so an old copy of the file
    swapped in later is refused, not silently blessed). Providers go first; each end-user
    credential is then bound to its provider's URL (one whose provider is gone is never sent).
    All or nothing: a row that does not decrypt raises `TamperedRecordError` and nothing changes.
    """
    with database.transaction() as conn:
        count = 0
        if table_version(conn, "mcp_providers") == 1:
            count += reseal_v1_providers(conn, cipher)
        if table_version(conn, "end_user_credentials") == 1:
            count += reseal_v1_credentials(conn, cipher, _provider_url(conn))
    return count
