"""The embedded SQLite database: one connection, one lock, WAL on files, the schema."""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

__all__ = [
    "Database",
    "DatabaseLock",
    "DatabaseLockedError",
    "DatabasePathError",
    "bump_counter",
    "check_database_path",
    "new_subject",
    "read_counter",
]


class DatabasePathError(Exception):
    """The database path cannot hold a database: a directory, a missing or read-only directory.

    The message is one line that names the path and what to do."""


class DatabaseLockedError(DatabasePathError):
    """Another issuer process holds this database (its `<db>.lock`)."""


def _in_memory(path: str) -> bool:
    return path in (":memory:", "")


def check_database_path(path: str) -> None:
    """Raise `DatabasePathError` unless `path` can be (or is) a database file in a writable directory.

    Creates the file (mode 0600) when it does not exist yet, the way `Database` would.
    """
    if _in_memory(path):
        return
    file = Path(path)
    if file.is_dir():
        raise DatabasePathError(
            f"{path} is a directory; the database is a file in it, e.g. {file / 'issuer.db'}"
        )
    directory = file.parent
    if not directory.exists():
        raise DatabasePathError(
            f"the directory {directory} of database {path} does not exist; create it first"
        )
    if not directory.is_dir():
        raise DatabasePathError(f"{directory} (the directory of database {path}) is not a directory")
    try:
        _create_owner_only(path)
    except OSError as exc:
        raise DatabasePathError(
            f"cannot create database {path}: {exc.strerror}; its directory must be writable"
            " (it also holds the database's WAL, key and lock files)"
        ) from None
    if not os.access(directory, os.W_OK):
        raise DatabasePathError(
            f"the directory {directory} of database {path} is read-only; the database needs to write"
            " its WAL, key and lock files next to it"
        )


class DatabaseLock:
    """An exclusive lock on a database for one process's lifetime: `fcntl.flock` on `<db>.lock`.

    Two issuers on one database would each load (and rotate) signing keys and drift apart. The
    lock is advisory and per open file: the kernel drops it when the holder exits, however it
    exits, so a crash never leaves a stale lock behind. The holder writes its pid into the
    file, so the refusal can name it. Use `DatabaseLock.acquire(path)` (None for `:memory:`)
    and `release()`, or `with`.
    """

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def __repr__(self) -> str:
        return f"DatabaseLock({self.path!r}, held={self._fd is not None})"

    @classmethod
    def acquire(cls, db_path: str) -> DatabaseLock | None:
        """Lock `db_path` (after `check_database_path`), or raise `DatabaseLockedError` naming the holder."""
        if _in_memory(db_path):
            return None
        check_database_path(db_path)
        lock_path = f"{db_path}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DatabasePathError(f"cannot create lock file {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise DatabasePathError(f"cannot lock {lock_path}: {exc.strerror}") from None
            who = f"process {holder}" if holder else "another process"
            raise DatabaseLockedError(
                f"database {db_path} is in use by another issuer ({who} holds {lock_path}); stop it,"
                " or give this issuer a database of its own"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(db_path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing the descriptor drops the flock; the file stays (removing it would race a
            # process that opened it and is about to lock it).
            os.close(fd)

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


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

    def __init__(self, path: str, *, issuer_schema: bool = True) -> None:
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
            if issuer_schema:
                self._create_issuer_schema()
        except BaseException:
            self._conn.close()
            raise

    def _create_issuer_schema(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, _SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"unsupported schema version {version} in {self.path}")
        self._conn.executescript(_SCHEMA)
        with self.transaction() as conn:
            _give_every_user_a_subject(conn)
            conn.execute(_SUBJECT_INDEX)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

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

    @property
    def in_memory(self) -> bool:
        return _in_memory(self.path)

    def sibling(self, suffix: str) -> Database:
        """A database file next to this one (its path + `suffix`) without the issuer's schema.

        For data written on every request (token events): commits there do not change this
        database, so they neither invalidate the page cache of its readers nor wake the
        `data_version` checks of every worker. In memory this object itself (one process, whose own
        commits do neither).
        """
        return self if self.in_memory else Database(self.path + suffix, issuer_schema=False)

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
