"""`TokenEventObserver`: the ASGI middleware that turns each token answer (or refusal) into an event."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fake_enterprise.authentication import basic_client_id
from fake_enterprise.token_events.decoding import decoded_parts
from fake_enterprise.token_events.store import TokenEvents

__all__ = ["TokenEventObserver"]

_log = logging.getLogger(__name__)
# Request bodies past this are not read for "who asked" (the endpoints refuse them anyway).
_MAX_CAPTURE = 64 * 1024
# How long to wait for the rest of a small body the handler did not read (it has all arrived, normally).
_READ_REST_TIMEOUT = 1.0
# Members of an answer that hold a token we signed (a refresh token is opaque: not shown, not kept).
_TOKEN_MEMBERS = ("token", "access_token", "id_token")


def _header(scope: Scope, name: bytes) -> bytes:
    return next((value for key, value in scope["headers"] if key.lower() == name), b"")


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
        decoded = decoded_parts(token) if isinstance(token, str) else None
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
                "alg": header.get("alg"),
                "kid": header.get("kid"),
                "jti": claims.get("jti"),
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
        client_id = basic_client_id(_header(scope, b"authorization").decode("latin-1"))
        if "client_id" not in asked and client_id:
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
