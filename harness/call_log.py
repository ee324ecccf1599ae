"""`CallLog`: what each server of a local stack was asked, recorded by an ASGI wrapper around its app.

The demo shows these calls per forwarding mode, and tests count the IdP's token exchanges per
user with it. A token request's grant type, requested token type and (for a token exchange) the
user its subject token names are recorded; the tokens themselves never are.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import jwt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Call", "CallLog"]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
_URN_PREFIXES = ("urn:ietf:params:oauth:grant-type:", "urn:ietf:params:oauth:token-type:")
# A token request bigger than this is not worth recording (nor buffering); it is passed on untouched.
_MAX_RECORDED_BODY = 65_536


def _short(urn: str | None) -> str | None:
    if urn is None:
        return None
    for prefix in _URN_PREFIXES:
        if urn.startswith(prefix):
            return urn.removeprefix(prefix)
    return urn


@dataclass(frozen=True)
class Call:
    """One request a server answered. For a token request: its grant type and requested token
    type (URN prefixes dropped: `token-exchange`, `id-jag`) and `subject`, the `tenant/user` a
    token exchange's subject token names (read without verification: it is for display)."""

    server: str
    method: str
    path: str
    status: int
    grant_type: str | None = None
    requested_token_type: str | None = None
    subject: str | None = None

    def describe(self) -> str:
        text = f"{self.server} {self.method} {self.path}"
        if self.grant_type is not None:
            text += f" {self.grant_type}"
            if self.requested_token_type is not None:
                text += f"->{self.requested_token_type}"
        return text


def _subject(token: str | None) -> str | None:
    if not token:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return f"{claims.get('tenant_id')}/{claims.get('preferred_username')}"


class CallLog:
    """Calls recorded by `wrap`ped apps, in the order their answers started (thread-safe)."""

    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def since(self, mark: int) -> list[Call]:
        """The calls recorded after `mark` (an earlier `len(log)`)."""
        with self._lock:
            return self._calls[mark:]

    def exchanges(self, requested_token_type: str | None = None) -> Counter[str]:
        """Successful token exchanges per subject (`tenant/user`), optionally of one requested type."""
        return Counter(
            call.subject or "?"
            for call in self.calls
            if call.grant_type == "token-exchange"
            and call.status == 200
            and (requested_token_type is None or call.requested_token_type == _short(requested_token_type))
        )

    def _add(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def wrap(self, app: ASGIApp, server: str) -> ASGIApp:
        """`app`, recording every HTTP request it answers as a `Call` of `server`."""

        async def logged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            fields: dict[str, str | None] = {}
            if scope["method"] == "POST" and scope["path"].endswith("/token"):
                receive, fields = await _read_token_request(receive)
            recorded = False

            def record(status: int) -> None:
                nonlocal recorded
                if not recorded:
                    recorded = True
                    self._add(Call(server, scope["method"], scope["path"], status, **fields))

            async def recording_send(message: Message) -> None:
                # Recorded before the answer leaves, so a client that has it finds the call logged.
                if message["type"] == "http.response.start":
                    record(message["status"])
                await send(message)

            try:
                await app(scope, receive, recording_send)
            finally:
                record(500)  # the app ended without answering

        return logged


async def _read_token_request(receive: Receive) -> tuple[Receive, dict[str, str | None]]:
    """The token request's recorded fields, and a `receive` that replays its body to the app."""
    messages: list[Message] = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False) or len(body) > _MAX_RECORDED_BODY:
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    if len(body) > _MAX_RECORDED_BODY:
        return replay, {}
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        return replay, {}
    grant_type = form.get("grant_type")
    fields: dict[str, str | None] = {
        "grant_type": _short(grant_type),
        "requested_token_type": _short(form.get("requested_token_type")),
    }
    if grant_type == TOKEN_EXCHANGE_GRANT:
        fields["requested_token_type"] = fields["requested_token_type"] or "access_token"
        fields["subject"] = _subject(form.get("subject_token"))
    return replay, fields
