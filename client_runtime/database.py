"""The embedded SQLite database the provider and credential stores share, and its table versions."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Database", "LegacyRecordsError", "SchemaVersionError"]

_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS client_runtime_schema (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class SchemaVersionError(RuntimeError):
    """A table was written by a client_runtime whose row format this one does not read."""


class LegacyRecordsError(SchemaVersionError):
    """A table holds rows sealed by an older client_runtime, whose seal left fields such as
    `server_url` unauthenticated. They are refused until `reseal_legacy_rows` upgrades them."""


class Database:
    """One SQLite connection (a file, or ":memory:"), serialised by a lock so threads may share it.

    A file it creates is mode 0600, and so are the journal, WAL and SHM files SQLite makes beside
    it. An existing file keeps its mode.

    Store operations are single small statements, so they run inline rather than on a worker thread.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        name = os.fspath(path)
        if name not in ("", ":memory:"):
            # SQLite creates the file with the umask's mode (often 0644) and gives its journal, WAL
            # and SHM files the main file's mode; creating it 0600 first keeps all of them private.
            os.close(os.open(name, os.O_RDWR | os.O_CREAT, 0o600))
        self._connection = sqlite3.connect(name, check_same_thread=False, isolation_level=None)
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA foreign_keys = ON")
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error)."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def table_version(conn: sqlite3.Connection, table: str) -> int | None:
    """The row format `table` is stored in: None if the table does not exist yet.

    A table that exists with no recorded version was written before versions were recorded (1).
    """
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    if found.fetchone() is None:
        return None
    conn.execute(_VERSIONS)
    row = conn.execute("SELECT version FROM client_runtime_schema WHERE name = ?", (table,)).fetchone()
    return 1 if row is None else int(row[0])


def set_table_version(conn: sqlite3.Connection, table: str, version: int) -> None:
    conn.execute(_VERSIONS)
    conn.execute(
        "INSERT INTO client_runtime_schema VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET version = excluded.version",
        (table, version),
    )


def require_table_version(conn: sqlite3.Connection, table: str, version: int) -> bool:
    """Check `table` is at `version`; False if it is older but empty (the caller upgrades it in place).

    Older rows with data raise `LegacyRecordsError` (their seals are weaker; an operator decides),
    a newer format raises `SchemaVersionError`.
    """
    found = table_version(conn, table)
    if found == version:
        return True
    if found is not None and found > version:
        raise SchemaVersionError(
            f"table {table} is in row format v{found}, written by a newer client_runtime"
            f" (this one reads v{version})"
        )
    # `table` is a store's own constant name, never input.
    count = 0 if found is None else conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
    if count:
        raise LegacyRecordsError(
            f"table {table} holds {count} row(s) sealed by an older client_runtime (format v{found}), whose"
            " seal does not cover server_url and the other stored fields; check those rows, then call"
            " client_runtime.reseal_legacy_rows(database, cipher) once"
        )
    return False
