"""Helpers for the client tests: real servers on loopback with request logs, and a host that counts."""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import fake_enterprise
import fake_mcp_server
from client_runtime import (
    EnterpriseTokenClient,
    IdentityMode,
    MCPProvider,
    MCPToolRuntime,
    TokenBroker,
)
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread

TENANT = "acme"
ISSUE_TOKEN_PATH = "/inner/api/mcp/issue-token"


@dataclass
class Seen:
    """One HTTP request a server received; `status` is set once the response starts (0 until then)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int = 0

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


class RequestLog:
    """ASGI middleware recording every HTTP request as it arrives, and its response status.

    Recording on arrival (not on completion) means a request the client has had an answer to
    is always in the log.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._seen: list[Seen] = []
        self._changed = threading.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        seen = Seen(scope["method"], scope["path"], headers)
        with self._changed:
            self._seen.append(seen)
            self._changed.notify_all()

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
            await send(message)

        await self.app(scope, receive, recording_send)

    def mark(self) -> int:
        with self._changed:
            return len(self._seen)

    def since(self, mark: int) -> list[Seen]:
        with self._changed:
            return list(self._seen[mark:])

    def wait_for(self, arrived: Callable[[list[Seen]], bool], timeout: float = 10.0) -> bool:
        """Block until `arrived(log)` holds (True), or `timeout` passes (False). Run it off the event loop."""
        with self._changed:
            return self._changed.wait_for(lambda: arrived(self._seen), timeout)


@dataclass
class Stack:
    issuer_url: str
    secret: str = field(repr=False)
    server_url: str
    admin: fake_enterprise.AdminClient
    issuer_log: RequestLog
    server_log: RequestLog
    _ids: Iterator[int] = field(default_factory=itertools.count)
    # The opaque `sub` the issuer gave each user this stack created, back to its user id.
    _users_by_subject: dict[str, str] = field(default_factory=dict)

    def new_user(self, name: str, *, grant: bool = True) -> str:
        """A user unique to this test session (tests share the issuer), signed in with SSO if `grant`."""
        user_id = f"{name}-{next(self._ids)}"
        created = self.admin.create_user(TENANT, user_id, email=f"{user_id}@acme.test", name=name)
        self._users_by_subject[created["sub"]] = user_id
        if grant:
            self.admin.grant(TENANT, user_id)
        return user_id

    def user_of(self, subject: str) -> str:
        """The user id behind a `sub` this stack's issuer assigned; any other `sub` as it is."""
        return self._users_by_subject.get(subject, subject)

    def user_of_token(self, token: str) -> str:
        """Whose token it is, read without checking its signature: the tests only ask whose it is."""
        return self.user_of(str(jwt.decode(token, options={"verify_signature": False})["sub"]))

    def provider(self, **overrides: Any) -> MCPProvider:
        values: dict[str, Any] = {
            "provider_id": "notes",
            "tenant_id": TENANT,
            "server_url": self.server_url,
            "identity_mode": IdentityMode.IDP_TOKEN,
        }
        values.update(overrides)
        return MCPProvider(**values)


def _serve(app: ASGIApp, sock: socket.socket) -> ServedApp:
    try:
        return start_in_thread(app, sock)
    except BaseException:
        sock.close()
        raise


def serve_recorder(app: ASGIApp | None = None) -> tuple[ServedApp, RequestLog]:
    """A server that records every request it gets (answering 404 unless given an app): the host
    a leaked secret would reach, so a test can assert it saw nothing."""
    sock = bind_loopback()
    recorder = RequestLog(app if app is not None else Starlette())
    return _serve(recorder, sock), recorder


def serve_issuer(secret: str, admin_secret: str) -> tuple[ServedApp, RequestLog]:
    sock = bind_loopback()
    settings = fake_enterprise.IssuerSettings(socket_url(sock), secret, admin_secret)
    app = RequestLog(fake_enterprise.create_app(settings))
    return _serve(app, sock), app


def serve_mcp_server(issuer_url: str) -> tuple[ServedApp, RequestLog, str]:
    sock = bind_loopback()
    resource_url = f"{socket_url(sock)}/mcp"
    app = RequestLog(
        fake_mcp_server.create_app(
            fake_mcp_server.ServerSettings(issuer_url=issuer_url, resource_url=resource_url)
        )
    )
    return _serve(app, sock), app, resource_url


@dataclass
class Host:
    """What a host holds: one runtime, its broker, and the issue-token calls its client made."""

    runtime: MCPToolRuntime
    broker: TokenBroker
    token_client: EnterpriseTokenClient
    issued_for: list[str]
    user_of: Callable[[str], str]

    async def whoami(self, provider: MCPProvider, user_id: str | None) -> str:
        """The user the server acted as (its `sub` mapped back to the user id)."""
        result = await self.runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=user_id)
        assert not result.is_error, result
        assert result.structured_content is not None
        return self.user_of(str(result.structured_content["sub"]))


def counting_http_client(issued_for: list[str]) -> httpx.AsyncClient:
    async def count(request: httpx.Request) -> None:
        if request.url.path == ISSUE_TOKEN_PATH:
            issued_for.append(json.loads(request.content)["user_id"])

    return httpx.AsyncClient(event_hooks={"request": [count]})
