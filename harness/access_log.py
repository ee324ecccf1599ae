"""Logging for the served apps: one access-log line per request, and nothing secret in any line.

- `AccessLogMiddleware` writes `client "METHOD path?query" status duration` at INFO. A query
  value is shown only for parameters known to be harmless (`response_type`, `client_id`, ...);
  every other value (`code`, `state`, `code_challenge`, a token) is replaced by `***`. A Bearer
  JWT on the request appears as its `kid`, `sub` and `jti`, never as the token.
- `configure_logging` sets the level and puts `RedactingFilter` on the handler, a last guard for
  every logger: a JWT anywhere in a message becomes its `kid`/`sub`/`jti`, and the secrets the
  process knows (the issuer's inner and admin secrets) become `***`.

uvicorn's own access log stays off (`harness.servers`): it prints query strings as they are.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "LOG_LEVELS",
    "AccessLogMiddleware",
    "RedactingFilter",
    "access_logger",
    "configure_logging",
    "describe_token",
]

LOG_LEVELS = ("debug", "info", "warning", "error")


def access_logger(role: str) -> logging.Logger:
    """The access log of one server role (`issuer`, `server`, ...): `mcp_idfwd.access.<role>`."""
    return logging.getLogger(f"mcp_idfwd.access.{role}")


# Query parameters whose values say nothing secret (RFC 6749 / 7636 / 8707 request parameters).
_SHOWN_QUERY_PARAMETERS = frozenset(
    {"response_type", "client_id", "scope", "code_challenge_method", "grant_type", "prompt", "error"}
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _segment(text: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def _short(value: Any) -> str:
    return quote(str(value)[:64], safe="")


def describe_token(token: str) -> str:
    """`jwt(kid=... sub=... jti=...)` for a JWT (read, not verified), `opaque (not shown)` otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        return "opaque (not shown)"
    header, claims = _segment(parts[0]), _segment(parts[1])
    if not header:
        return "opaque (not shown)"
    fields = " ".join(
        f"{name}={_short(source[name])}"
        for name, source in (("kid", header), ("sub", claims), ("jti", claims))
        if name in source
    )
    return f"jwt({fields})"


def redacted_query(query: str) -> str:
    """The query string with every value but the harmless ones replaced by `***`."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(
        f"{quote(name, safe='')}={_short(value) if name in _SHOWN_QUERY_PARAMETERS else '***'}"
        for name, value in pairs
    )


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return f"bearer {describe_token(credentials.strip())}"
            return "credentials (not shown)"
    return None


class AccessLogMiddleware:
    """ASGI middleware: one INFO line on `logger` per HTTP request, once its response has started."""

    def __init__(self, app: ASGIApp, logger: logging.Logger) -> None:
        self._app = app
        self._logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._logger.isEnabledFor(logging.INFO):
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, record_status)
        finally:
            self._log(scope, status, time.perf_counter() - started)

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        path = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        target = f"{path}?{redacted_query(query)}" if query else path
        client = scope.get("client")
        who = f"{client[0]}:{client[1]}" if client else "-"
        credentials = _bearer(scope)
        self._logger.info(
            '%s "%s %s" %s %.1fms%s',
            who,
            scope.get("method", "-"),
            target,
            status or "-",
            seconds * 1000,
            f" {credentials}" if credentials else "",
        )


class RedactingFilter(logging.Filter):
    """Rewrites each record's message: JWTs become `jwt(kid=.. sub=.. jti=..)`, known secrets `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _JWT.sub(lambda match: describe_token(match.group(0)), message)
        for secret in self._secrets:
            cleaned = cleaned.replace(secret, "***")
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (it may be replaced), a loop turn's lines at once.

    On an event loop, the lines logged during one turn of the loop (under load, the access lines
    of many requests) go out in one write at the end of that turn, instead of one write and one
    flush each: they still appear at once, at a fraction of the system calls. Off a loop, or from
    another loop than the one a write is pending on, a line is written straight away.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[str] = []
        self._pending_on: asyncio.AbstractEventLoop | None = None

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        return

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (logging.Handler.handle).
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and loop is self._pending_on:
            self._pending.append(line)
            return
        self._write_pending()
        if loop is None:
            self._write(line)
            return
        self._pending = [line]
        self._pending_on = loop
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
        finally:
            self.release()

    def _write_pending(self) -> None:
        lines, self._pending, self._pending_on = self._pending, [], None
        if lines:
            self._write("".join(lines))

    def _write(self, text: str) -> None:
        try:
            stream = self.stream
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing left to report it to
            return


@contextmanager
def configure_logging(level: str, *, secrets: Iterable[str] = ()) -> Iterator[None]:
    """While open: log at `level` (one of LOG_LEVELS) to stderr, every record through `RedactingFilter`.

    On exit the root logger is as it was, so a command run in-process (by tests) leaves no trace.
    """
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    # httpx logs each request the servers make (discovery, JWKS) at info: noise beside the
    # access log, so it speaks at debug only.
    client = logging.getLogger("httpx")
    previous = root.level, client.level
    root.addHandler(handler)
    root.setLevel(level.upper())
    if level != "debug":
        client.setLevel(logging.WARNING)
    try:
        yield
    finally:
        handler.flush()
        root.removeHandler(handler)
        root.setLevel(previous[0])
        client.setLevel(previous[1])
