"""The embedded SQLite database the provider and credential stores share."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Database"]


class Database:
    """One SQLite connection (a file, or ":memory:"), serialised by a lock so threads may share it.

    Store operations are single small statements, so they run inline rather than on a worker thread.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self._connection = sqlite3.connect(os.fspath(path), check_same_thread=False, isolation_level=None)
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
