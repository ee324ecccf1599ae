"""Server test support: signing keys, a JWKS the tests host themselves, token minting, a running server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_mcp_server import ServerSettings, VerifierSettings, create_app
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: Any = field(repr=False)

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig"}


@dataclass(frozen=True)
class Keys:
    rsa: SigningKey
    rsa_other: SigningKey  # never published: signs tokens that must fail
    ec: SigningKey
    ed: SigningKey
    rsa_weak: SigningKey  # 1024 bits: published, but too short to trust


def generate_keys() -> Keys:
    """One of each key type the tests sign with (RSA generation is slow: once per session)."""

    def rsa_key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Keys(
        rsa=SigningKey("rsa-1", "RS256", rsa_key()),
        rsa_other=SigningKey("rsa-1", "RS256", rsa_key()),
        ec=SigningKey("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1())),
        ed=SigningKey("ed-1", "EdDSA", ed25519.Ed25519PrivateKey.generate()),
        rsa_weak=SigningKey(
            "rsa-weak", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024)
        ),
    )


class JWKSHost:
    """A tiny issuer stand-in: OIDC discovery + a JWKS whose keys, caching and failures tests control."""

    def __init__(self) -> None:
        self.url = ""
        self.keys: list[dict[str, Any]] = []
        self.cache_control: str | None = "max-age=300"
        self.failing = False
        self.discovery_issuer: str | None = None  # what discovery claims the issuer is (default: url)
        self.discovery_jwks_uri: str | None = None  # the jwks_uri discovery names (default: jwks_url)
        self.fetches = 0
        self._fetched = threading.Condition()
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks.json", self._jwks),
            ]
        )

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks.json"

    def publish(self, *signing_keys: SigningKey) -> None:
        self.keys = [key.public_jwk() for key in signing_keys]

    def wait_for_fetches(self, count: int, timeout: float = 5.0) -> None:
        with self._fetched:
            if not self._fetched.wait_for(lambda: self.fetches >= count, timeout):
                raise TimeoutError(f"JWKS fetched {self.fetches} times, expected {count}")

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.discovery_issuer or self.url,
                "jwks_uri": self.discovery_jwks_uri or self.jwks_url,
            }
        )

    async def _jwks(self, request: Request) -> Response:
        with self._fetched:
            self.fetches += 1
            self._fetched.notify_all()
        if self.failing:
            return JSONResponse({"error": "unavailable"}, status_code=503)
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        return Response(json.dumps({"keys": self.keys}), media_type="application/json", headers=headers)


@contextmanager
def hosted_jwks(*published: SigningKey) -> Iterator[JWKSHost]:
    host = JWKSHost()
    host.publish(*published)
    sock = bind_loopback()
    host.url = socket_url(sock)
    served = start_in_thread(host.app, sock)
    try:
        yield host
    finally:
        served.stop()


def mint(
    key: SigningKey,
    *,
    issuer: str,
    audience: str | list[str],
    claims: dict[str, Any] | None = None,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    alg: str | None = None,
) -> str:
    """A token signed by `key`: sensible claims and header, overridden by `claims`/`header`, minus `drop`.

    A header value of None removes that header parameter.
    """
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": "user-1",
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "tenant_id": "tenant-a",
        "email": "user-1@example.test",
        "name": "User One",
        "client_id": "host-app",
    }
    payload.update(claims or {})
    for name in drop:
        payload.pop(name, None)
    headers = {
        name: value
        for name, value in {"kid": key.kid, "typ": "JWT", **(header or {})}.items()
        if value is not None
    }
    if "typ" not in headers:
        headers["typ"] = ""  # PyJWT's way of leaving typ out
    return jwt.encode(payload, key.private_key, algorithm=alg or key.alg, headers=headers)


@dataclass
class RunningServer:
    served: ServedApp
    resource_url: str
    issuer: str
    app: Starlette

    @property
    def url(self) -> str:
        return self.served.url


@contextmanager
def running_server(host: JWKSHost, **verifier_options: Any) -> Iterator[RunningServer]:
    """The reference server trusting `host`, with these `VerifierSettings` options."""
    sock = bind_loopback()
    resource_url = socket_url(sock) + "/mcp"
    verifier = VerifierSettings(audience=resource_url, issuer=host.url, **verifier_options)
    app = create_app(ServerSettings(issuer_url=host.url, resource_url=resource_url, verifier=verifier))
    served = start_in_thread(app, sock)
    try:
        yield RunningServer(served, resource_url, host.url, app)
    finally:
        served.stop()
