"""`TokenEvents`: the most recent token events, in SQLite, written behind the answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from fake_enterprise.storage import Database
from fake_enterprise.write_behind import WriteBehind

__all__ = ["EVENTS_SUFFIX", "TokenEvent", "TokenEvents"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS token_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    endpoint TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT,
    tenant_id TEXT,
    user_id TEXT,
    subject TEXT,
    client_id TEXT,
    grant_type TEXT,
    audience TEXT,
    token_kind TEXT,
    alg TEXT,
    kid TEXT,
    jti TEXT,
    header TEXT,
    claims TEXT
)
"""
# Columns clipped to short text (a list joined, anything else but a string or number dropped).
_TEXT_COLUMNS = (
    "reason",
    "tenant_id",
    "user_id",
    "subject",
    "client_id",
    "grant_type",
    "audience",
    "alg",
    "kid",
    "jti",
)
_MAX_FIELD = 512
# The events of an issuer with database file F live in F + this (with their own -wal and -shm).
EVENTS_SUFFIX = "-events"
# How long a reader waits for this process's pending events to be written (a stuck disk).
_FLUSH_TIMEOUT = 5.0
_MAX_JSON = 8 * 1024


@dataclass(frozen=True)
class TokenEvent:
    """One token issued or refused. `header`/`claims` are the decoded JWS parts, never the token."""

    id: int
    at: float
    endpoint: str
    outcome: str  # "issued" | "refused"
    status: int
    reason: str | None
    tenant_id: str | None
    user_id: str | None
    subject: str | None
    client_id: str | None
    grant_type: str | None
    audience: str | None
    token_kind: str | None
    alg: str | None
    kid: str | None
    jti: str | None
    header: dict[str, Any] | None
    claims: dict[str, Any] | None


# Every field of an event but its `id`, which SQLite assigns.
_COLUMNS = tuple(field.name for field in fields(TokenEvent) if field.name != "id")
_INSERT = (
    f"INSERT INTO token_events ({', '.join(_COLUMNS)})"  # noqa: S608 -- constant column names
    f" VALUES ({', '.join('?' * len(_COLUMNS))})"
)


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = " ".join(str(item) for item in value)
    if value is None or isinstance(value, dict | bool):
        return None
    return str(value)[:_MAX_FIELD]


def _json_text(value: Mapping[str, Any] | str) -> str:
    # A token's header or claims arrive as the JSON text the token carries: kept as it is.
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= _MAX_JSON else json.dumps({"truncated": True})


class TokenEvents:
    """The last `keep` token events, in a file beside the issuer's database (in it, in memory)."""

    def __init__(self, db: Database, clock: Callable[[], float], *, keep: int = 500) -> None:
        """Events of the issuer whose database is `db`: in a file next to it (`<db>-events`), or in
        `db` itself when it is in memory."""
        if keep <= 0:
            raise ValueError("keep must be positive")
        self._db = db.sibling(EVENTS_SUFFIX)
        self._clock = clock
        self._keep = keep
        with self._db.transaction() as conn:
            conn.execute(_SCHEMA)
        # Written behind the requests by a thread, in batches: a busy disk never holds up an
        # answer, and one commit serves many requests.
        self._writer: WriteBehind[tuple[Any, ...]] = WriteBehind(self._insert, name="token-events")
        self._own_file = not db.in_memory

    def record(self, **fields: Any) -> None:
        """Store one event (fields named as `TokenEvent`'s, `header`/`claims` as dicts or their JSON
        text); drop the oldest."""
        self.add([fields])

    def add(self, events: list[dict[str, Any]]) -> None:
        """Store `events` (as `record` takes them), written behind: `recent` and `flush` wait for them."""
        self._writer.submit([self._row(fields) for fields in events])

    def flush(self) -> None:
        """Wait (a few seconds at most) until every event this process added so far is written."""
        self._writer.flush(timeout=_FLUSH_TIMEOUT)

    def close(self) -> None:
        """Write what is pending; close the events' own database file (in memory there is none)."""
        self._writer.close()
        if self._own_file:
            self._db.close()

    def _row(self, fields: dict[str, Any]) -> tuple[Any, ...]:
        row = {name: fields.get(name) for name in _COLUMNS}
        row["at"] = self._clock()
        for name in ("header", "claims"):
            if row[name] is not None:
                row[name] = _json_text(row[name])
        for name in _TEXT_COLUMNS:
            row[name] = _text(row[name])
        return tuple(row[name] for name in _COLUMNS)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        with self._db.transaction() as conn:
            conn.executemany(_INSERT, rows)
            last = conn.execute("SELECT max(id) FROM token_events").fetchone()[0] or 0
            conn.execute("DELETE FROM token_events WHERE id <= ?", (last - self._keep,))

    def recent(self, limit: int = 100) -> list[TokenEvent]:
        """The newest `limit` events, newest first: every event this process added before the call,
        and those other workers have written by then (within about 50 ms)."""
        self.flush()
        with self._db.reading() as conn:
            # By time: workers write their batches in whatever order their threads get to it.
            rows = conn.execute(
                "SELECT * FROM token_events ORDER BY at DESC, id DESC LIMIT ?", (limit,)
            ).fetchall()
        events = []
        for row in rows:
            data = dict(row)
            for name in ("header", "claims"):
                data[name] = None if data[name] is None else json.loads(data[name])
            events.append(TokenEvent(**data))
        return events
