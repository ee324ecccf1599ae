"""Token events: every token the issuer hands out, and every refusal, kept for the console.

`TokenEventObserver` is an ASGI middleware on the two paths that hand out tokens to users (the
inner issue-token API and the OAuth token endpoint). It sees each request and its answer, so one
place records both what was issued and what was refused, with the reason the caller was given,
whichever handler (ours or the `mcp` SDK's) produced it.

`TokenEvents` keeps the most recent events in a bounded SQLite table of the issuer's database, so
that several worker processes on one database share them and they survive a restart.

What is stored: who asked (tenant, user, subject, client), the audience, the answer's status and
reason, and a token's decoded header and claims. Never a token, a signature, a secret or a grant:
request fields are copied from an allow-list, and a token is split and its signature dropped before
anything is kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fake_enterprise.storage import Database
from fake_enterprise.write_behind import WriteBehind

__all__ = ["TokenEvent", "TokenEventObserver", "TokenEvents", "decode_unverified"]

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
_COLUMNS = (
    "at",
    "endpoint",
    "outcome",
    "status",
    "reason",
    "tenant_id",
    "user_id",
    "subject",
    "client_id",
    "grant_type",
    "audience",
    "token_kind",
    "alg",
    "kid",
    "jti",
    "header",
    "claims",
)
_log = logging.getLogger(__name__)
_INSERT = (
    f"INSERT INTO token_events ({', '.join(_COLUMNS)})"  # noqa: S608 -- constant column names
    f" VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_MAX_FIELD = 512
# The events of an issuer with database file F live in F + this (with their own -wal and -shm).
EVENTS_SUFFIX = "-events"
# How long a reader waits for this process's pending events to be written (a stuck disk).
_FLUSH_TIMEOUT = 5.0
_MAX_JSON = 8 * 1024
# Request bodies past this are not read for "who asked" (the endpoints refuse them anyway).
_MAX_CAPTURE = 64 * 1024
# Members of an answer that hold a token we signed (a refresh token is opaque: not shown, not kept).
# How long to wait for the rest of a small body the handler did not read (it has all arrived, normally).
_READ_REST_TIMEOUT = 1.0
_TOKEN_MEMBERS = ("token", "access_token", "id_token")


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


def _b64url_text(part: str) -> str:
    padded = part + "=" * (-len(part) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii")).decode()


def _decoded_parts(token: str) -> tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]] | None:
    """The JSON text and value of a JWS compact token's header and of its claims, or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        texts = _b64url_text(parts[0]), _b64url_text(parts[1])
        header, claims = json.loads(texts[0]), json.loads(texts[1])
    except (ValueError, UnicodeError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return (texts[0], header), (texts[1], claims)


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims of a JWS compact token (the signature is ignored), or None if it is not one."""
    decoded = _decoded_parts(token)
    return None if decoded is None else (decoded[0][1], decoded[1][1])


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
    """The last `keep` token events, in the issuer's database."""

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
        for name in ("reason", "tenant_id", "user_id", "subject", "client_id", "grant_type", "audience"):
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


def _header(scope: Scope, name: bytes) -> bytes:
    return next((value for key, value in scope["headers"] if key.lower() == name), b"")


def _basic_client_id(scope: Scope) -> str | None:
    """The client id of HTTP Basic client authentication (the user name; the password is not read)."""
    scheme, _, credentials = _header(scope, b"authorization").decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, _ = decoded.partition(":")
    return unquote(client_id) if separator and client_id else None


def _who_asked(body: bytes, content_type: str) -> dict[str, Any]:
    """Who a request says it is for, from an allow-list of its fields (never a credential)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    fields: dict[str, Any] = {}
    try:
        if media_type == "application/json":
            data = json.loads(body)
            if isinstance(data, dict):
                fields = {
                    "tenant_id": data.get("tenant_id"),
                    "user_id": data.get("user_id"),
                    "audience": data.get("audience"),
                    "client_id": data.get("app_id") or None,
                }
        elif media_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            fields = {
                "client_id": form.get("client_id"),
                "grant_type": form.get("grant_type"),
                "audience": form.get("resource") or form.get("audience"),
            }
    except (ValueError, UnicodeError, RecursionError):
        return {}
    return {name: value for name, value in fields.items() if isinstance(value, str)}


def _issued(answer: Mapping[str, Any], asked: dict[str, Any]) -> list[dict[str, Any]]:
    events = []
    for member in _TOKEN_MEMBERS:
        token = answer.get(member)
        decoded = _decoded_parts(token) if isinstance(token, str) else None
        if decoded is None:
            continue
        (header_text, header), (claims_text, claims) = decoded
        events.append(
            {
                **asked,
                "tenant_id": claims.get("tenant_id", asked.get("tenant_id")),
                "user_id": claims.get("preferred_username", asked.get("user_id")),
                "subject": claims.get("sub"),
                "client_id": claims.get("client_id", claims.get("azp", asked.get("client_id"))),
                "audience": claims.get("aud", asked.get("audience")),
                "token_kind": member,
                "alg": _text(header.get("alg")),
                "kid": _text(header.get("kid")),
                "jti": _text(claims.get("jti")),
                "header": header_text,
                "claims": claims_text,
            }
        )
    return events


def _reason(answer: Any, status: int) -> str:
    if not isinstance(answer, dict):
        return f"HTTP {status}"
    code = answer.get("error")
    text = answer.get("message") or answer.get("error_description")
    if code and text:
        return f"{code}: {text}"
    return str(code or text or f"HTTP {status}")


class TokenEventObserver:
    """ASGI middleware recording each answer of the `paths` it watches as token events.

    An event is handed to `TokenEvents` before the end of the answer goes out, so a caller that
    has its answer finds the event in the console of the process that answered (other workers'
    consoles show it once it is written, within about 50 ms).
    """

    def __init__(self, app: ASGIApp, *, events: TokenEvents, paths: Mapping[str, str]) -> None:
        self._app = app
        self._events = events
        self._paths = dict(paths)  # path -> the endpoint's name in events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._paths.get(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is None or scope.get("method") != "POST":
            await self._app(scope, receive, send)
            return
        body = bytearray()
        answer = bytearray()
        status = 500
        body_complete = False
        recorded = False

        async def observed_receive() -> Message:
            nonlocal body_complete
            message = await receive()
            if message["type"] == "http.request":
                if len(body) <= _MAX_CAPTURE:
                    body.extend(message.get("body", b""))
                body_complete = not message.get("more_body", False)
            else:  # the client has gone: there is nothing more to read
                body_complete = True
            return message

        async def record(final_status: int) -> None:
            nonlocal recorded
            recorded = True
            if not body_complete:
                await self._read_rest(scope, observed_receive)
            self._record(endpoint, scope, bytes(body), final_status, bytes(answer))

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                answer.extend(message.get("body", b""))
                if not message.get("more_body", False) and not recorded:
                    await record(status)
            await send(message)

        try:
            await self._app(scope, observed_receive, observed_send)
        except Exception:
            if not recorded:
                answer.clear()
                await record(500)
            raise

    @staticmethod
    async def _read_rest(scope: Scope, receive: Receive) -> None:
        """Read a small body the handler refused without reading (a wrong secret): it says who asked."""
        declared = _header(scope, b"content-length")
        if not declared.isdigit() or int(declared) > _MAX_CAPTURE:
            return
        with anyio.move_on_after(_READ_REST_TIMEOUT):
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return

    def _record(self, endpoint: str, scope: Scope, body: bytes, status: int, answer: bytes) -> None:
        content_type = _header(scope, b"content-type").decode("latin-1")
        asked = {} if len(body) > _MAX_CAPTURE else _who_asked(body, content_type)
        if "client_id" not in asked and (client_id := _basic_client_id(scope)) is not None:
            asked["client_id"] = client_id
        try:
            parsed = json.loads(answer) if answer else None
        except (ValueError, UnicodeError):
            parsed = None
        base = {"endpoint": endpoint, "status": status}
        if 200 <= status < 300 and isinstance(parsed, dict):
            events = [{**base, "outcome": "issued", **event} for event in _issued(parsed, asked)]
        else:
            events = [{**base, "outcome": "refused", "reason": _reason(parsed, status), **asked}]
        try:
            self._events.add(events)
        except Exception as exc:
            # The console's record must never cost a caller its token (or its refusal).
            _log.warning("token event not recorded (%s)", type(exc).__name__)
