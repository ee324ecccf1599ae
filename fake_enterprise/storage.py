"""The embedded SQLite database: one connection, one lock, WAL on files, the schema."""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Database", "bump_counter", "new_subject", "read_counter"]

_SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    sealed_private_key BLOB NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    max_exp INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS users (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    email TEXT,
    name TEXT,
    token_profile TEXT,
    created_at INTEGER NOT NULL,
    subject TEXT,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE TABLE IF NOT EXISTS grants (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    sealed_refresh_token BLOB NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS tenant_policies (
    tenant_id TEXT PRIMARY KEY,
    deny INTEGER NOT NULL DEFAULT 0,
    allowed_audiences TEXT
);
CREATE TABLE IF NOT EXISTS key_reservations (
    kid TEXT NOT NULL REFERENCES signing_keys (kid) ON DELETE CASCADE,
    holder TEXT NOT NULL,
    max_exp INTEGER NOT NULL,
    PRIMARY KEY (kid, holder)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

# After `_SCHEMA`, whose CREATE TABLE IF NOT EXISTS leaves an older `users` table as it was.
_SUBJECT_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS users_by_subject ON users (subject)"


def new_subject() -> str:
    """A fresh opaque subject (`sub`): 128 random bits, 32 lowercase hex characters."""
    return secrets.token_hex(16)


def read_counter(conn: sqlite3.Connection, name: str) -> int:
    """A counter of the `counters` table (0 until first bumped)."""
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def bump_counter(conn: sqlite3.Connection, name: str) -> int:
    """Add one to a counter inside the caller's transaction; the new value."""
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1",
        (name,),
    )
    return read_counter(conn, name)


def _give_every_user_a_subject(conn: sqlite3.Connection) -> None:
    """Schema 1 had no `subject` column: add it and give each existing user a fresh subject."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(users)")}
    if "subject" not in columns:
        conn.execute("ALTER TABLE users ADD COLUMN subject TEXT")
    rows = conn.execute("SELECT tenant_id, user_id FROM users WHERE subject IS NULL").fetchall()
    conn.executemany(
        "UPDATE users SET subject = ? WHERE tenant_id = ? AND user_id = ?",
        [(new_subject(), row[0], row[1]) for row in rows],
    )


def _create_owner_only(path: str) -> None:
    """Create the database file with mode 0600 before SQLite opens it, if it does not exist yet.

    SQLite creates the WAL and SHM files with the database file's permissions, so they are
    owner-only too. An existing file keeps the mode its owner gave it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)


class Database:
    """A single SQLite connection shared by all threads, serialised by a lock.

    SQLite work here is sub-millisecond, so one lock is simpler and faster than a pool. Reads
    on the hot path (issue-token, JWKS) run on the event loop; the rest runs in worker threads.

    Several processes may open one database file (`mcp-idfwd issuer --workers N`): WAL lets
    them read while one writes, and `data_version` tells each one cheaply whether another has
    committed since it last looked, so in-memory copies (keys, faults) are reread only then.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        if path not in (":memory:", ""):
            _create_owner_only(path)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, _SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"unsupported schema version {version} in {path}")
            self._conn.executescript(_SCHEMA)
            with self.transaction() as conn:
                _give_every_user_a_subject(conn)
                conn.execute(_SUBJECT_INDEX)
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"Database({self.path!r})"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside `BEGIN IMMEDIATE ... COMMIT` (rolled back on error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads (autocommit; the lock keeps other threads out meanwhile)."""
        with self._lock:
            yield self._conn

    def data_version(self) -> int:
        """A number that changes when another connection (any process) has committed since the last call.

        SQLite's `PRAGMA data_version`: about a microsecond, no table read. Commits made on this
        connection do not change it; their writers update their own copies.
        """
        with self._lock:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
