"""Forging tokens: the issuer-signed ones through its admin API, the attacker's ones here.

Tokens that need the issuer's private key are minted through the issuer's admin API
(`POST /admin/mint`, which signs with the current key and lets the caller override header and
claims); tokens an attacker would sign with their own key (embedded `jwk`, `jku`, `x5u`, `x5c`)
are signed with the `Attacker`'s key, whose JWKS and certificate it serves on loopback for the run.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.utils import base64url_decode, base64url_encode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_enterprise import AdminAPIError, AdminClient, AdminClientError
from harness.conformance.model import CaseSkipped, ConformanceSetupError
from harness.servers import bind_loopback, start_in_thread

__all__ = ["Attacker", "Forge", "attacker_host", "b64", "header", "new_subject", "payload", "segments"]


def b64(data: bytes) -> str:
    return base64url_encode(data).decode()


def segments(token: str) -> list[str]:
    return token.split(".")


def payload(token: str) -> dict[str, Any]:
    return json.loads(base64url_decode(segments(token)[1]))


def header(token: str) -> dict[str, Any]:
    return json.loads(base64url_decode(segments(token)[0]))


@dataclass
class Attacker:
    """An attacker's own RSA key, its JWKS and certificate, served on loopback for the run."""

    key: rsa.RSAPrivateKey = field(repr=False)
    kid: str
    jwk: dict[str, Any]
    cert_der: bytes = field(repr=False)
    base_url: str = ""
    fetched: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls) -> Attacker:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"attacker-{uuid.uuid4().hex[:8]}"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-idfwd conformance attacker")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, kid=kid, jwk=jwk, cert_der=cert.public_bytes(serialization.Encoding.DER))

    def record(self, path: str) -> None:
        with self._lock:
            self.fetched.append(path)

    def app(self) -> Starlette:
        async def jwks(request: Request) -> Response:
            self.record(request.url.path)
            return JSONResponse({"keys": [self.jwk]})

        async def cert(request: Request) -> Response:
            self.record(request.url.path)
            pem = base64.encodebytes(self.cert_der).decode()
            body = f"-----BEGIN CERTIFICATE-----\n{pem}-----END CERTIFICATE-----\n"
            return Response(body, media_type="application/pem-certificate-chain")

        return Starlette(routes=[Route("/jwks.json", jwks), Route("/cert.pem", cert)])

    def sign(self, claims: dict[str, Any], header: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers=header)


def new_subject() -> str:
    """A subject as the issuer makes them: opaque, 32 lowercase hex characters."""
    return secrets.token_hex(16)


@dataclass
class Forge:
    """Everything the cases need to build their tokens, set up once per run."""

    admin: AdminClient
    audience: str
    attacker: Attacker
    jwks: dict[str, Any] = field(default_factory=dict, repr=False)
    valid_token: str = field(default="", repr=False)
    # Opaque like an issuer's subjects (32 hex chars), fresh per run so runs never share a user.
    subject: str = field(default_factory=new_subject)

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        header: dict[str, Any] | None = None,
        hmac_key: str | None = None,
    ) -> str:
        """A token from the issuer's `/admin/mint`: a valid one, changed by `claims` and `header`.

        A `None` value removes that claim or header member; `hmac_key` signs an HS* header alg.
        """
        claims = {**self.default_claims(), **(claims or {})}
        try:
            return self.admin.mint(claims, header=header, hmac_key=hmac_key)
        except AdminClientError as exc:
            raise ConformanceSetupError(f"the issuer's POST /admin/mint failed: {exc}") from None

    def mint_raw(self, raw_header: str, raw_claims: str) -> str:
        """A token whose header and claims are exactly this JSON text, signed by the issuer.

        Duplicate members cannot be built from dicts, hence text. Needs an issuer whose
        `/admin/mint` takes `raw_header`/`raw_claims`; against an older one the case is skipped,
        saying so.
        """
        try:
            return self.admin.mint(raw_header=raw_header, raw_claims=raw_claims)
        except AdminAPIError as exc:
            if exc.status == 400 and exc.error == "invalid_request" and "raw_" in exc.message:
                raise CaseSkipped(
                    f"the issuer's /admin/mint does not take raw JSON ({exc.message})"
                ) from None
            raise ConformanceSetupError(f"the issuer's POST /admin/mint failed: {exc}") from None
        except AdminClientError as exc:
            raise ConformanceSetupError(f"the issuer's POST /admin/mint failed: {exc}") from None

    def default_claims(self) -> dict[str, Any]:
        return {
            "sub": self.subject,
            "aud": self.audience,
            "tenant_id": "conformance",
            "preferred_username": "conformance-user",
            "email": "conformance-user@example.com",
            "name": "Conformance User",
        }

    def fresh_claims(self) -> dict[str, Any]:
        """The valid token's claims with a new `jti`, for the tokens the attacker signs here."""
        return {**payload(self.valid_token), "jti": uuid.uuid4().hex}

    def valid_kid(self) -> str | None:
        return header(self.valid_token).get("kid")

    def issuer_public_pem(self) -> str:
        """The PEM of the issuer's public key that signed the valid token (the HS256 "secret")."""
        kid = self.valid_kid()
        keys = self.jwks.get("keys", [])
        jwk_dict = next((k for k in keys if k.get("kid") == kid), keys[0] if keys else None)
        if jwk_dict is None:
            raise ConformanceSetupError("the issuer's JWKS has no keys")
        public_key = jwt.PyJWK(jwk_dict).key
        pem = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode()


@contextmanager
def attacker_host(attacker: Attacker) -> Iterator[None]:
    served = start_in_thread(attacker.app(), bind_loopback())
    attacker.base_url = served.url
    try:
        yield
    finally:
        served.stop()
