"""BearerAuthMiddleware hands the app what the mcp SDK expects, and lets nothing else through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from server_support import JWKSHost, Keys, mint
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from fake_mcp_server import (
    BearerAuthMiddleware,
    BearerTokenVerifier,
    JWKSTokenVerifier,
    SigningKeysUnavailable,
    TokenRejected,
    VerifierSettings,
)
from harness.servers import bind_loopback, serve_in_thread, socket_url

METADATA = "http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp"


async def _echo_principal(scope: Scope, receive: Receive, send: Send) -> None:
    user = scope["user"]
    assert isinstance(user, AuthenticatedUser)
    from_context = get_access_token()
    body = {
        "subject": user.access_token.subject,
        "scopes": list(scope["auth"].scopes),
        "context_subject": from_context.subject if from_context else None,
    }
    await JSONResponse(body)(scope, receive, send)


def test_verified_user_is_in_scope_and_context(jwks_host: JWKSHost, keys: Keys) -> None:
    sock = bind_loopback()
    audience = socket_url(sock) + "/mcp"
    verifier = JWKSTokenVerifier(VerifierSettings(audience=audience, issuer=jwks_host.url))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await verifier.aclose()

    app = Starlette(
        routes=[Route("/mcp", BearerAuthMiddleware(_echo_principal, verifier, METADATA))], lifespan=lifespan
    )
    token = mint(keys.rsa, issuer=jwks_host.url, audience=audience, claims={"sub": "alice", "scope": "a b"})
    with serve_in_thread(app, sock):
        response = httpx.get(audience, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.json() == {"subject": "alice", "scopes": ["a", "b"], "context_subject": "alice"}


def test_websocket_is_closed_unauthenticated() -> None:
    verifier = JWKSTokenVerifier(
        VerifierSettings(audience="https://testserver/mcp", issuer="http://127.0.0.1:1")
    )
    client = TestClient(BearerAuthMiddleware(_echo_principal, verifier, METADATA))
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/mcp"):
        pass
    assert closed.value.code == 1008


class _TableVerifier:
    """Someone else's verifier: a fixed table of tokens, no JWKS, no settings. Only the seam."""

    async def verify(self, token: str) -> AccessToken:
        if token == "good":
            return AccessToken(token=token, client_id="app", scopes=["x"], subject="carol")
        if token == "keys-down":
            raise SigningKeysUnavailable(retry_after=6.2)
        raise TokenRejected("not in the table")


def test_any_bearer_token_verifier_gets_our_challenges() -> None:
    verifier: BearerTokenVerifier = _TableVerifier()
    sock = bind_loopback()
    url = socket_url(sock) + "/mcp"
    app = Starlette(routes=[Route("/mcp", BearerAuthMiddleware(_echo_principal, verifier, METADATA))])
    with serve_in_thread(app, sock), httpx.Client(timeout=10) as http:
        accepted = http.get(url, headers={"Authorization": "Bearer good"})
        refused = http.get(url, headers={"Authorization": "Bearer other"})
        anonymous = http.get(url)
        unavailable = http.get(url, headers={"Authorization": "Bearer keys-down"})
    assert accepted.json() == {"subject": "carol", "scopes": ["x"], "context_subject": "carol"}
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", error_description="not in the table", resource_metadata="{METADATA}"'
    )
    assert anonymous.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA}"'
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "7"
    assert unavailable.json() == {
        "error": "temporarily_unavailable",
        "error_description": "signing keys unavailable",
    }
