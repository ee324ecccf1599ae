"""A refused token says why: the server's RFC 6750 error and error_description, at the runtime and on the CLI.

Each case is a real refusal by the reference MCP server of a token the real issuer minted:
the token's audience names another URL of the server, the issuer's clock is an hour behind (so
its tokens have expired), or the server checks signatures against keys that are not the issuer's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from client_support import TENANT, Stack, serve_mcp_server
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import fake_enterprise
import fake_mcp_server
from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    MCPIdentityForwardingError,
    MCPToolRuntime,
    TokenBroker,
    TokenKey,
)
from client_runtime.challenge import parse_bearer_challenge
from harness.cli import main
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Refusal:
    """Where a token of `issuer_url` is refused by the MCP server at `server_url`, and the reason."""

    issuer_url: str
    secret: str
    server_url: str
    description: str


def _other_key_like(jwk: dict[str, Any]) -> dict[str, Any]:
    """A public JWK with the same kid, alg and key type as `jwk` but another key."""
    if jwk["kty"] == "RSA":
        public = RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048).public_key(), as_dict=True)
    elif jwk["kty"] == "EC":
        public = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    else:
        public = OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key(), as_dict=True)
    return {**public, "kid": jwk["kid"], "alg": jwk["alg"], "use": "sig"}


def _serve(app: Any) -> ServedApp:
    sock = bind_loopback()
    try:
        return start_in_thread(app, sock)
    except BaseException:
        sock.close()
        raise


@pytest.fixture(scope="module")
def refusals(stack: Stack) -> Iterator[dict[str, Refusal]]:
    # An issuer whose clock is an hour behind, and a server trusting it.
    sock = bind_loopback()
    late = fake_enterprise.IssuerSettings(
        issuer_url=socket_url(sock),
        secret="late-issuer",
        admin_secret="late-issuer-admin",
        clock=lambda: time.time() - 3600,
    )
    late_issuer = start_in_thread(fake_enterprise.create_app(late), sock)
    with fake_enterprise.AdminClient(late_issuer.url, late.admin_secret) as late_admin:
        late_admin.create_user(TENANT, "alice")
        late_admin.grant(TENANT, "alice")
    late_server, _, late_url = serve_mcp_server(late_issuer.url)

    # Keys with the issuer's kids that are not the issuer's keys, and a server checking against them.
    forged = {"keys": [_other_key_like(jwk) for jwk in stack.admin.jwks()["keys"]]}

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(forged)

    forged_jwks = _serve(Starlette(routes=[Route("/jwks.json", jwks)]))
    sock = bind_loopback()
    forging_url = f"{socket_url(sock)}/mcp"
    forging_settings = fake_mcp_server.ServerSettings(
        issuer_url=stack.issuer_url, resource_url=forging_url, jwks_url=f"{forged_jwks.url}/jwks.json"
    )
    forging_server = start_in_thread(fake_mcp_server.create_app(forging_settings), sock)
    try:
        yield {
            # The server's own port, named `localhost`: a token minted for that URL has another `aud`.
            "wrong audience": Refusal(
                stack.issuer_url,
                stack.secret,
                stack.server_url.replace("127.0.0.1", "localhost"),
                "wrong audience",
            ),
            "expired": Refusal(late_issuer.url, late.secret, late_url, "token expired"),
            "bad signature": Refusal(stack.issuer_url, stack.secret, forging_url, "bad signature"),
        }
    finally:
        forging_server.stop()
        forged_jwks.stop()
        late_server.stop()
        late_issuer.stop()


CASES = ["wrong audience", "expired", "bad signature"]


@pytest.mark.parametrize("case", CASES)
async def test_the_runtime_keeps_the_servers_reason(
    stack: Stack, refusals: dict[str, Refusal], case: str
) -> None:
    refusal = refusals[case]
    alice = "alice"
    if refusal.issuer_url == stack.issuer_url:
        alice = stack.new_user("alice")
    settings = EnterpriseTokenSettings(issuer_url=refusal.issuer_url, inner_api_secret=refusal.secret)
    async with EnterpriseTokenClient(settings) as token_client:
        broker = TokenBroker(token_client)
        runtime = MCPToolRuntime(broker=broker)
        async with runtime:
            with pytest.raises(MCPIdentityForwardingError) as caught:
                await runtime.invoke(
                    stack.provider(server_url=refusal.server_url),
                    "whoami",
                    {},
                    tenant_id=TENANT,
                    user_id=alice,
                )
        assert broker.cached(TokenKey(TENANT, alice, "account", refusal.server_url)) is None
    error = caught.value
    assert (error.status_code, error.error, error.error_description) == (
        401,
        "invalid_token",
        refusal.description,
    )
    assert error.error_code == "invalid_token"
    assert error.reason == f"invalid_token ({refusal.description})"
    assert str(error).endswith(f": invalid_token ({refusal.description})")


@pytest.mark.parametrize("case", CASES)
def test_call_prints_the_servers_reason(
    stack: Stack, refusals: dict[str, Refusal], case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    refusal = refusals[case]
    user = "alice" if refusal.issuer_url != stack.issuer_url else stack.new_user("alice")
    code = main(
        [
            "call",
            f"--issuer={refusal.issuer_url}",
            f"--secret={refusal.secret}",
            f"--tenant={TENANT}",
            f"--server={refusal.server_url}",
            f"--user={user}",
            "--tool=whoami",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    first_line = err.splitlines()[0]
    assert first_line == (
        f"call: {refusal.server_url} refused the token (HTTP 401): invalid_token ({refusal.description})"
    )


@pytest.mark.parametrize(
    ("values", "error", "description"),
    [
        (
            ['Bearer error="invalid_token", error_description="wrong audience"'],
            "invalid_token",
            "wrong audience",
        ),
        # Another scheme first, an escaped quote, a token value, and a second header field.
        (
            ['Basic realm="x", Bearer error=invalid_token, error_description="say \\"no\\""'],
            "invalid_token",
            'say "no"',
        ),
        (["Basic realm=x", 'Bearer error="insufficient_scope"'], "insufficient_scope", None),
        # No error (RFC 6750 §3.1: the request had no credentials), a token68, and no Bearer at all.
        (['Bearer resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource"'], None, None),
        (["Bearer abc=="], None, None),
        # A malformed remainder keeps what came before it; control characters are dropped.
        (['Bearer error="invalid_token", error_description="bad "x""'], "invalid_token", None),
        (['Bearer error="invalid_token", error_description="line\\\x07break"'], "invalid_token", "linebreak"),
    ],
)
def test_bearer_challenges_are_parsed_by_the_grammar(
    values: list[str], error: str | None, description: str | None
) -> None:
    challenge = parse_bearer_challenge(values)
    assert challenge is not None
    assert (challenge.error, challenge.error_description) == (error, description)


def test_no_bearer_challenge_is_none() -> None:
    assert parse_bearer_challenge(['Basic realm="x"']) is None
    assert parse_bearer_challenge([]) is None
