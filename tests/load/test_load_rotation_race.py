"""A rotation that lands while the server's JWKS refresh is already on its way.

The JWKS here is served by the test, which can hold a response: the server's background refresh
(its cached keys have expired) leaves before the issuer publishes key B and answers after. A
token signed with B arriving meanwhile is valid and B is published, so it must be accepted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fake_mcp_server import JWKSTokenVerifier, VerifierSettings
from harness.servers import bind_loopback, serve_in_thread, socket_url

AUDIENCE = "http://127.0.0.1:9/mcp"
ISSUER = "http://127.0.0.1:9"


@dataclass
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey = field(repr=False)

    @classmethod
    def generate(cls, kid: str) -> SigningKey:
        return cls(kid, ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        public = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": "ES256", "use": "sig"}

    def token(self, subject: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": AUDIENCE, "iat": now, "exp": now + 300}
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid, "typ": "JWT"})


@dataclass
class HoldableJWKS:
    """A JWKS endpoint whose responses carry the key set as it was when the request arrived."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)

    async def endpoint(self, request: Request) -> JSONResponse:
        snapshot = {"keys": list(self.keys)}
        self.arrived.set()
        await run_in_threadpool(self.released.wait, 30)
        return JSONResponse(snapshot, headers={"Cache-Control": "max-age=0"})


@pytest.fixture
def jwks() -> Iterator[HoldableJWKS]:
    holdable = HoldableJWKS()
    holdable.released.set()
    sock = bind_loopback()
    holdable.url = socket_url(sock) + "/jwks"
    with serve_in_thread(Starlette(routes=[Route("/jwks", holdable.endpoint)]), sock):
        try:
            yield holdable
        finally:
            holdable.released.set()


@pytest.mark.anyio
async def test_a_key_published_while_a_refresh_is_in_flight_is_still_accepted(jwks: HoldableJWKS) -> None:
    key_a, key_b = SigningKey.generate("key-a"), SigningKey.generate("key-b")
    jwks.keys.append(key_a.jwk())
    # Cached keys expire at once, so every verification of a new token starts a background refresh.
    settings = VerifierSettings(
        audience=AUDIENCE,
        issuer=ISSUER,
        jwks_url=jwks.url,
        min_jwks_refresh_interval=0.0,
        max_jwks_max_age=0.0,
        default_jwks_max_age=0.0,
    )
    async with JWKSTokenVerifier(settings) as verifier:
        assert (await verifier.verify(key_a.token("first"))).subject == "first"

        jwks.released.clear()
        jwks.arrived.clear()
        assert (await verifier.verify(key_a.token("second"))).subject == "second"  # refresh leaves
        assert await anyio.to_thread.run_sync(jwks.arrived.wait, 10)

        jwks.keys.append(key_b.jwk())  # the issuer rotates; the refresh in flight predates it
        with anyio.fail_after(20):
            pending = asyncio.ensure_future(verifier.verify(key_b.token("third")))
            # Let it run up to where it waits for the refresh in flight (no I/O before that).
            for _ in range(10):
                await asyncio.sleep(0)
            jwks.released.set()
            accepted = await pending
    assert accepted.subject == "third"
