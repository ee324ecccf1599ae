"""The reference server against the real issuer (fake_enterprise): identities, rotation, JWKS outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from mcp.types.version import LATEST_HANDSHAKE_VERSION

from fake_enterprise import AdminClient, IssuerSettings
from fake_enterprise import create_app as create_issuer_app
from fake_mcp_server import JWKSTokenVerifier, ServerSettings, TokenRejected, VerifierSettings, create_app
from harness.conformance import initialize_request
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread

SECRET = "server-tests-secret"
ADMIN_SECRET = "server-tests-admin-secret"
_INITIALIZE = initialize_request("server-with-issuer-test")


@contextmanager
def _serve(app_factory: Any) -> Iterator[tuple[str, ServedApp]]:
    sock = bind_loopback()
    url = socket_url(sock)
    served = start_in_thread(app_factory(url), sock)
    try:
        yield url, served
    finally:
        served.stop()


@pytest.fixture
def issuer() -> Iterator[tuple[str, AdminClient]]:
    with (
        _serve(lambda url: create_issuer_app(IssuerSettings(url, SECRET, ADMIN_SECRET))) as (url, _),
        AdminClient(url, ADMIN_SECRET, inner_secret=SECRET) as admin,
    ):
        yield url, admin


@contextmanager
def _mcp_server(issuer_url: str, **verifier_options: Any) -> Iterator[str]:
    def build(url: str) -> Any:
        resource_url = url + "/mcp"
        verifier = VerifierSettings(audience=resource_url, issuer=issuer_url, **verifier_options)
        return create_app(ServerSettings(issuer_url=issuer_url, resource_url=resource_url, verifier=verifier))

    with _serve(build) as (url, _):
        yield url + "/mcp"


def _call(resource_url: str, token: str, body: dict[str, Any] = _INITIALIZE) -> httpx.Response:
    """POST `body` (by default an MCP initialize: 200 when the token is accepted)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    return httpx.post(resource_url, headers=headers, json=body, timeout=10)


def _whoami(resource_url: str, token: str) -> dict[str, Any]:
    """whoami in a stateless exchange of its own: initialize, then the tool call on that session."""
    opened = _call(resource_url, token)
    assert opened.status_code == 200, opened.text
    session = {
        "Mcp-Session-Id": opened.headers["mcp-session-id"],
        "MCP-Protocol-Version": LATEST_HANDSHAKE_VERSION,
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream", **session}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    reply = httpx.post(resource_url, headers=headers, json=call, timeout=10)
    assert reply.status_code == 200, reply.text
    data = [line[5:] for line in reply.text.splitlines() if line.startswith("data:")]
    return httpx.Response(200, content=data[-1]).json()["result"]["structuredContent"]


def _sign_in(admin: AdminClient, tenant: str, user: str) -> None:
    created = admin.create_user(tenant, user, email=f"{user}@{tenant}.test", name=user.title())
    admin.grant(tenant, user)
    return str(created["sub"])


def test_issued_token_is_the_user_on_the_server(issuer: tuple[str, AdminClient]) -> None:
    issuer_url, admin = issuer
    subject = _sign_in(admin, "acme", "alice")
    with _mcp_server(issuer_url) as resource_url:
        token = admin.issue_token("acme", "alice", resource_url)["token"]
        identity = _whoami(resource_url, token)
    assert identity["sub"] == subject
    assert identity["tenant_id"] == "acme"
    assert identity["email"] == "alice@acme.test"
    assert identity["iss"] == issuer_url
    assert identity["aud"] == resource_url


def test_token_for_another_server_is_refused(issuer: tuple[str, AdminClient]) -> None:
    issuer_url, admin = issuer
    _sign_in(admin, "acme", "alice")
    with _mcp_server(issuer_url) as resource_url:
        elsewhere = admin.issue_token("acme", "alice", "http://127.0.0.1:1/mcp")["token"]
        response = _call(resource_url, elsewhere)
    assert response.status_code == 401
    assert response.json()["error_description"] == "wrong audience"


@pytest.mark.parametrize(
    ("mint", "description"),
    [
        ({"claims": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}}, "token expired"),
        ({"claims": {}, "header": {"alg": "HS256"}, "hmac_key": "guessable"}, "algorithm not allowed"),
        ({"claims": {"iss": "http://127.0.0.1:1"}}, "wrong issuer"),
    ],
    ids=["expired", "hs256", "other-iss"],
)
def test_minted_bad_tokens_are_refused(
    issuer: tuple[str, AdminClient], mint: dict[str, Any], description: str
) -> None:
    issuer_url, admin = issuer
    with _mcp_server(issuer_url) as resource_url:
        claims = {"sub": "alice", "aud": resource_url, **mint.pop("claims")}
        response = _call(resource_url, admin.mint(claims, **mint))
    assert response.status_code == 401
    assert response.json()["error_description"] == description


def test_key_rotation_does_not_break_a_running_server(issuer: tuple[str, AdminClient]) -> None:
    issuer_url, admin = issuer
    subject = _sign_in(admin, "acme", "alice")
    with _mcp_server(issuer_url) as resource_url:
        before = admin.issue_token("acme", "alice", resource_url)["token"]
        assert _call(resource_url, before).status_code == 200
        for alg in ("RS256", "ES256", "EdDSA", "Ed25519"):
            admin.rotate_keys(alg)
            after = admin.issue_token("acme", "alice", resource_url)["token"]
            assert _call(resource_url, after).status_code == 200, alg
        # Tokens signed before the rotations stay good: the retired keys are still published.
        assert _call(resource_url, before).status_code == 200
        assert _whoami(resource_url, after)["sub"] == subject


def test_jwks_outage_does_not_break_cached_keys(issuer: tuple[str, AdminClient]) -> None:
    issuer_url, admin = issuer
    _sign_in(admin, "acme", "alice")
    # The server's key cache expires at once, so every request past the first wants a refresh.
    with _mcp_server(issuer_url, max_jwks_max_age=0, min_jwks_refresh_interval=0) as resource_url:
        assert (
            _call(resource_url, admin.issue_token("acme", "alice", resource_url)["token"]).status_code == 200
        )
        admin.set_faults(jwks_unavailable=True)
        for _ in range(3):
            fresh = admin.issue_token("acme", "alice", resource_url)["token"]
            assert _call(resource_url, fresh).status_code == 200
        admin.rotate_keys()
        unseen_key = admin.issue_token("acme", "alice", resource_url)["token"]
        assert _call(resource_url, unseen_key).json()["error_description"] == "unknown signing key"
        admin.clear_faults()
        assert _call(resource_url, unseen_key).status_code == 200


def test_a_verifier_that_allows_only_eddsa_refuses_the_fully_specified_name(
    issuer: tuple[str, AdminClient],
) -> None:
    """`Ed25519` is allowed by default, and like any alg it can be left out of `algorithms`."""
    issuer_url, admin = issuer
    _sign_in(admin, "acme", "alice")
    admin.rotate_keys("Ed25519")
    token = admin.issue_token("acme", "alice", "https://mcp.example/mcp")["token"]
    settings = VerifierSettings(audience="https://mcp.example/mcp", issuer=issuer_url, algorithms=("EdDSA",))

    async def verify() -> str:
        async with JWKSTokenVerifier(settings) as verifier:
            try:
                await verifier.verify(token)
            except TokenRejected as exc:
                return exc.description
            return "accepted"

    assert asyncio.run(verify()) == "algorithm not allowed"
    default = VerifierSettings(audience="https://mcp.example/mcp", issuer=issuer_url)

    async def verify_default() -> str | None:
        async with JWKSTokenVerifier(default) as verifier:
            return (await verifier.verify(token)).subject

    assert asyncio.run(verify_default())
