"""Shared fixtures of the harness tests: a local stack, and MCP servers with purpose-built verifiers
(weak in one known way each, or strict) for the conformance battery to judge."""

from __future__ import annotations

import datetime
import json
import socket
import time
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

    # PyJWT's own exp check; a subclass may do its own instead.
    verify_exp = True

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
                options={
                    "verify_aud": False,
                    "verify_exp": self.verify_exp,
                    "require": ["exp", "iat", "sub", "iss"],
                },
            )
        except (jwt.PyJWTError, OverflowError, ValueError):
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


class CarelessVerifier(AudienceBlindVerifier):
    """Checks the audience too, but keys users by `preferred_username` (so another tenant's alice
    takes over alice's session), turns `exp` into a datetime (OverflowError: a 500 on a huge
    value, PyJWT's own check being off) and puts no bound on a token's lifetime: the faults of
    issue 9."""

    verify_exp = False

    def __init__(self, issuer_url: str, audience: str) -> None:
        super().__init__(issuer_url)
        self.audience = audience

    async def verify_token(self, token: str) -> AccessToken | None:
        verified = await super().verify_token(token)
        if verified is None or verified.claims is None or verified.claims.get("aud") != self.audience:
            return None
        claims = verified.claims
        expires = datetime.datetime.fromtimestamp(claims["exp"], datetime.UTC)
        if expires <= datetime.datetime.now(datetime.UTC):
            return None
        return verified.model_copy(
            update={"subject": claims.get("preferred_username"), "expires_at": int(expires.timestamp())}
        )


class _DuplicateMember(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _DuplicateMember("duplicate member")
    return members


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 15:
        raise ValueError("number out of range")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if abs(value) > 2**53:
        raise ValueError("number out of range")
    return value


class StrictVerifier(AudienceBlindVerifier):
    """The strict profile by hand: duplicate members, huge numbers, a future `iat` and lifetimes
    over 24 h are refused, the audience is checked, and users are keyed by `sub`."""

    def __init__(self, issuer_url: str, audience: str) -> None:
        super().__init__(issuer_url)
        self.audience = audience

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            header_segment, payload_segment, _ = token.split(".")
            for segment in (header_segment, payload_segment):
                json.loads(
                    jwt.utils.base64url_decode(segment),
                    object_pairs_hook=_unique_members,
                    parse_int=_bounded_int,
                    parse_float=_finite_float,
                )
        except ValueError:
            return None
        verified = await super().verify_token(token)
        if verified is None or verified.claims is None:
            return None
        claims = verified.claims
        if claims.get("aud") != self.audience or "kid" not in jwt.get_unverified_header(token):
            return None
        if claims["iat"] > time.time() + 60 or claims["exp"] - claims["iat"] > 24 * 3600:
            return None
        return verified


@contextmanager
def _weak_server(
    verifier: AudienceBlindVerifier, issuer_url: str, sock: socket.socket | None = None
) -> Iterator[ServedApp]:
    """An MCP server (the SDK's MCPServer) using `verifier`; the MCP endpoint is `url + "/mcp"`."""
    sock = sock or bind_loopback()
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


@contextmanager
def _server_checking_audience(
    verifier_class: type[CarelessVerifier | StrictVerifier], issuer_url: str
) -> Iterator[ServedApp]:
    sock = bind_loopback()
    verifier = verifier_class(issuer_url, socket_url(sock) + "/mcp")
    with _weak_server(verifier, issuer_url, sock) as served:
        yield served


@pytest.fixture(scope="module")
def careless_server(local_stack: LocalStack) -> Iterator[ServedApp]:
    """Has the faults of issue 9: another tenant's same-named user, huge times, long lifetimes."""
    with _server_checking_audience(CarelessVerifier, local_stack.issuer_url) as served:
        yield served


@pytest.fixture(scope="module")
def strict_server(local_stack: LocalStack) -> Iterator[ServedApp]:
    """Refuses everything the strict profile refuses."""
    with _server_checking_audience(StrictVerifier, local_stack.issuer_url) as served:
        yield served
