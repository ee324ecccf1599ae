"""`JWKSTokenVerifier`: checks a Bearer JWT against the issuer's JWKS, for any MCP server.

It implements the mcp SDK's `TokenVerifier` protocol, so it plugs into
`MCPServer(token_verifier=..., auth=AuthSettings(...))`; `verify()` also says why a token
was refused, for servers that put the reason into their RFC 6750 challenge.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from collections import OrderedDict
from types import TracebackType
from typing import Any

import httpx
import jwt
from jwt import exceptions as jwt_errors
from mcp.server.auth.provider import AccessToken

from fake_mcp_server.errors import TokenRejected
from fake_mcp_server.jwks import JWKSCache
from fake_mcp_server.settings import VerifierSettings

__all__ = ["JWKSTokenVerifier"]

logger = logging.getLogger(__name__)

# Header parameters that carry or point at a key chosen by whoever made the token. The only keys
# we trust are the issuer's, from its JWKS, so a token that offers its own is refused outright.
_TOKEN_SUPPLIED_KEY_HEADERS = ("jwk", "jku", "x5u", "x5c")

# PyJWT's exceptions, most specific first, and what we tell the caller for each.
_REASONS: tuple[tuple[type[jwt_errors.PyJWTError], str], ...] = (
    (jwt_errors.ExpiredSignatureError, "token expired"),
    (jwt_errors.ImmatureSignatureError, "token not yet valid"),
    (jwt_errors.InvalidAudienceError, "wrong audience"),
    (jwt_errors.InvalidIssuerError, "wrong issuer"),
    (jwt_errors.InvalidIssuedAtError, "invalid iat claim"),
    (jwt_errors.InvalidSubjectError, "invalid sub claim"),
    (jwt_errors.InvalidJTIError, "invalid jti claim"),
    (jwt_errors.InvalidSignatureError, "bad signature"),
    (jwt_errors.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt_errors.InvalidKeyError, "unusable signing key"),
    (jwt_errors.DecodeError, "malformed token"),
)


def _reason(exc: jwt_errors.PyJWTError) -> str:
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        # The claim name comes from our own settings (or is a registered claim), never the token.
        return f"missing {exc.claim} claim"
    for error_type, reason in _REASONS:
        if isinstance(exc, error_type):
            return reason
    return "invalid token"


def _normalised_type(value: str) -> str:
    value = value.lower()
    return value.removeprefix("application/")


class JWKSTokenVerifier:
    """Verify JWT access/ID tokens signed with the issuer's published keys.

    Use `async with` (or call `aclose()`) to release the HTTP client it owns. Pass
    `http_client` to use your own (it is then yours to close).
    """

    def __init__(self, settings: VerifierSettings, *, http_client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(timeout=settings.http_timeout, follow_redirects=False)
        self.jwks = JWKSCache(settings, self._client)
        self._algorithms = frozenset(settings.algorithms)
        self._accepted_types = frozenset(_normalised_type(t) for t in settings.accepted_types)
        self._decode_options: dict[str, Any] = {
            "verify_signature": True,
            "verify_exp": True,
            "verify_nbf": True,
            "verify_iat": True,
            "verify_aud": True,
            "verify_iss": settings.issuer is not None,
            "verify_sub": True,
            "verify_jti": True,
            "strict_aud": False,
            "require": list(settings.required_claims),
            "enforce_minimum_key_length": True,
        }
        # sha256(token) -> (AccessToken, exp): tokens that passed every check, until their exp.
        self._verified: OrderedDict[bytes, tuple[AccessToken, float]] = OrderedDict()

    def __repr__(self) -> str:
        return f"JWKSTokenVerifier(audience={self.settings.audience!r}, issuer={self.settings.issuer!r})"

    async def __aenter__(self) -> JWKSTokenVerifier:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.jwks.aclose()
        if self._owns_client:
            await self._client.aclose()

    async def verify_token(self, token: str) -> AccessToken | None:
        """The mcp SDK `TokenVerifier` protocol: the verified token, or None if it is refused."""
        try:
            return await self.verify(token)
        except TokenRejected as exc:
            logger.info("bearer token refused: %s", exc.description)
            return None

    async def verify(self, token: str) -> AccessToken:
        """The verified token, or `TokenRejected` saying why not (`SigningKeysUnavailable` if no keys)."""
        if not isinstance(token, str):
            raise TokenRejected("malformed token")
        if len(token) > self.settings.max_token_bytes:
            raise TokenRejected("token too large")
        if not token.isascii():
            raise TokenRejected("malformed token")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        remembered = self._verified.get(digest)
        if remembered is not None:
            access_token, expires_at = remembered
            if time.time() < expires_at:
                self._verified.move_to_end(digest)
                return access_token
            del self._verified[digest]
        access_token = await self._verify_fresh(token)
        self._remember(digest, access_token)
        return access_token

    async def _verify_fresh(self, token: str) -> AccessToken:
        header = self._checked_header(token)
        alg = header["alg"]
        key = await self.jwks.key_for(header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway,
                options=self._decode_options,  # type: ignore[arg-type]
            )
        except jwt_errors.PyJWTError as exc:
            raise TokenRejected(_reason(exc)) from None
        return self._access_token(token, claims)

    def _checked_header(self, token: str) -> dict[str, Any]:
        """The JOSE header, if it may go on to key lookup and signature verification."""
        segments = token.split(".")
        if len(segments) != 3:
            raise TokenRejected("malformed token")
        encoded = segments[0]
        try:
            header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (binascii.Error, ValueError, RecursionError):
            raise TokenRejected("malformed token") from None
        if not isinstance(header, dict):
            raise TokenRejected("malformed token")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise TokenRejected("algorithm not allowed")
        if any(name in header for name in _TOKEN_SUPPLIED_KEY_HEADERS):
            raise TokenRejected("token-supplied keys are not accepted")
        if "crit" in header:
            # We understand no JWS extension, so any critical one makes the token unacceptable
            # (RFC 7515 §4.1.11).
            raise TokenRejected("unsupported critical header")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed token")
        if self._accepted_types:
            typ = header.get("typ")
            if not isinstance(typ, str) or _normalised_type(typ) not in self._accepted_types:
                raise TokenRejected("unexpected token type")
        return header

    def _access_token(self, token: str, claims: dict[str, Any]) -> AccessToken:
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise TokenRejected(f"invalid {name} claim")
        subject = claims.get("sub")
        if subject is not None and not subject:
            raise TokenRejected("invalid sub claim")
        client_id = claims.get("client_id", claims.get("azp", ""))
        if not isinstance(client_id, str):
            raise TokenRejected("invalid client_id claim")
        expires_at = claims.get("exp")
        return AccessToken(
            token=token,
            client_id=client_id,
            scopes=_scopes(claims),
            expires_at=int(expires_at) if expires_at is not None else None,
            resource=self.settings.audience,
            subject=subject,
            claims=claims,
        )

    def _remember(self, digest: bytes, access_token: AccessToken) -> None:
        exp = (access_token.claims or {}).get("exp")
        # Only tokens with an exp still ahead: a cached answer must never outlive the token.
        if self.settings.cache_size == 0 or exp is None or exp <= time.time():
            return
        self._verified[digest] = (access_token, float(exp))
        if len(self._verified) > self.settings.cache_size:
            self._verified.popitem(last=False)


def _scopes(claims: dict[str, Any]) -> list[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, list) and all(isinstance(item, str) for item in scp):
        return list(scp)
    if isinstance(scp, str):
        return scp.split()
    return []
