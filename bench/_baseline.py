"""The "forwarding off" baseline: the reference server's tools and SDK stack, with no Bearer check.

`fake_mcp_server` has no unauthenticated mode (by design: it never acts anonymously), so the
baseline is built here the way `fake_mcp_server.create_app` builds the real server (same
`MCPServer`, same tools from `fake_mcp_server.tools`, same session manager and ASGI handler),
except that the Bearer middleware is replaced by one that reads no header and puts a fixed,
pre-built identity into the request. `whoami` therefore does the same work on both servers;
what the comparison measures is the forwarding path: token lookup and stamping on the client,
header parsing and token verification (a cache hit for a warm token) on the server.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fake_mcp_server.tools import NoteBook, register_tools

BASELINE_SUBJECT = "baseline-user"


class _FixedIdentity:
    """Admits every request as one fixed identity, without looking at any header."""

    def __init__(self, app: ASGIApp, access_token: AccessToken) -> None:
        self._app = AuthContextMiddleware(app)
        self._user = AuthenticatedUser(access_token)
        self._credentials = AuthCredentials(access_token.scopes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["user"] = self._user
            scope["auth"] = self._credentials
        await self._app(scope, receive, send)


def _fixed_access_token(resource_url: str, issuer_url: str) -> AccessToken:
    exp = int(time.time()) + 86_400
    claims: dict[str, Any] = {
        "iss": issuer_url,
        "sub": BASELINE_SUBJECT,
        "aud": resource_url,
        "exp": exp,
        "iat": exp - 86_400,
        "tenant_id": "acme",
        "email": f"{BASELINE_SUBJECT}@example.com",
        "name": "Baseline User",
    }
    return AccessToken(
        token="not-a-token",
        client_id="mcp-host",
        scopes=[],
        expires_at=exp,
        resource=resource_url,
        subject=BASELINE_SUBJECT,
        claims=claims,
    )


def create_baseline_app(resource_url: str, issuer_url: str) -> Starlette:
    """The reference server's MCP endpoint at `resource_url`, without authentication."""
    server = MCPServer("mcp-idfwd-baseline")
    register_tools(server, NoteBook(100, 2000))
    resource = urlsplit(resource_url)
    server.streamable_http_app(streamable_http_path=resource.path, host=resource.hostname or "127.0.0.1")
    session_manager = server.session_manager
    endpoint = _FixedIdentity(
        StreamableHTTPASGIApp(session_manager), _fixed_access_token(resource_url, issuer_url)
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with session_manager.run():
            yield

    return Starlette(routes=[Route(resource.path, endpoint=endpoint)], lifespan=lifespan)
