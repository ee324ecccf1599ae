"""Shared fixtures of the harness tests: a local stack, and a deliberately weak MCP server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jwt
import pytest
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from harness.servers import ServedApp, bind_loopback, serve_in_thread, socket_url
from harness.stack import LocalStack


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    with LocalStack() as stack:
        yield stack


class AudienceBlindVerifier:
    """Checks signature (RS256, key by kid from the issuer's JWKS), iss, exp, nbf, iat, required
    claims and size, like a careful verifier would, but never looks at `aud`: the bug the
    conformance battery must catch."""

    def __init__(self, issuer_url: str) -> None:
        self.issuer_url = issuer_url
        self.keys: dict[str, jwt.PyJWK] = {}

    async def _refresh(self) -> None:
        async with httpx.AsyncClient() as http:
            jwks = (await http.get(f"{self.issuer_url}/.well-known/jwks.json")).json()
        self.keys = {key["kid"]: jwt.PyJWK(key) for key in jwks["keys"]}

    async def _key(self, header: dict[str, Any]) -> jwt.PyJWK | None:
        kid = header.get("kid")
        if kid not in self.keys:
            await self._refresh()
        return self.keys.get(kid)

    async def verify_token(self, token: str) -> AccessToken | None:
        if len(token) > 16 * 1024:
            return None
        try:
            key = await self._key(jwt.get_unverified_header(token))
            if key is None:
                return None
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.issuer_url,
                options={"verify_aud": False, "require": ["exp", "iat", "sub", "iss"]},
            )
        except jwt.PyJWTError:
            return None
        return AccessToken(
            token=token,
            client_id="weak",
            scopes=[],
            expires_at=claims["exp"],
            subject=claims["sub"],
            claims=claims,
        )


class JkuTrustingVerifier(AudienceBlindVerifier):
    """Worse still: takes the signing key from the URL the token's `jku` header names."""

    async def _key(self, header: dict[str, Any]) -> jwt.PyJWK | None:
        if "jku" not in header:
            return await super()._key(header)
        async with httpx.AsyncClient() as http:
            jwks = (await http.get(header["jku"])).json()
        return next((jwt.PyJWK(key) for key in jwks["keys"] if key.get("kid") == header.get("kid")), None)


@contextmanager
def _weak_server(verifier: AudienceBlindVerifier, issuer_url: str) -> Iterator[ServedApp]:
    """An MCP server (the SDK's MCPServer) using `verifier`; the MCP endpoint is `url + "/mcp"`."""
    sock = bind_loopback()
    resource_url = socket_url(sock) + "/mcp"
    server = MCPServer(
        "weak",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=issuer_url, resource_server_url=resource_url, validate_token_resource=False
        ),
    )

    @server.tool()
    def echo(text: str) -> str:
        return text

    with serve_in_thread(server.streamable_http_app(), sock) as served:
        yield served


@pytest.fixture(scope="module")
def weak_server(local_stack: LocalStack) -> Iterator[ServedApp]:
    """Trusts the stack's issuer but skips the audience check."""
    with _weak_server(AudienceBlindVerifier(local_stack.issuer_url), local_stack.issuer_url) as served:
        yield served


@pytest.fixture
def jku_trusting_server(local_stack: LocalStack) -> Iterator[ServedApp]:
    """Also takes keys from whatever URL a token's `jku` header names."""
    with _weak_server(JkuTrustingVerifier(local_stack.issuer_url), local_stack.issuer_url) as served:
        yield served
