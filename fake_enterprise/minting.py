"""Turning a user and an audience into a signed JWT, and minting arbitrary tokens for tests."""

from __future__ import annotations

import base64
import hmac
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from fake_enterprise.directory import User
from fake_enterprise.keyring import KeyRing
from fake_enterprise.settings import IssuerSettings
from fake_enterprise.signing import algorithm as jws_algorithm
from fake_enterprise.signing import sign_jwt

__all__ = ["IssuedToken", "MintError", "TokenMinter"]

_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
# One Ed25519 key signs under either name (RFC 9864 keeps `EdDSA` for compatibility).
_ED25519_ALGORITHMS = ("EdDSA", "Ed25519")


class MintError(ValueError):
    """The requested token cannot be produced (e.g. an alg the current key cannot sign)."""


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    expires_at: int
    jti: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _json_text(text: str, name: str) -> Any:
    """The value `text` parses to; duplicate members are kept in the text (the last wins here)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise MintError(f"{name} is not JSON text") from None


def _reservable_exp(exp: Any) -> int | float | None:
    """`exp` if it is a finite number a key can be kept published for, else None (keep it longest)."""
    if isinstance(exp, bool):
        return None
    if isinstance(exp, int):
        return exp  # any size: the ring caps how long it keeps a key
    return exp if isinstance(exp, float) and math.isfinite(exp) else None


def _overlay(defaults: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`defaults` updated with `overrides`; an override of None removes the member."""
    merged = dict(defaults)
    for name, value in overrides.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


class TokenMinter:
    def __init__(self, settings: IssuerSettings, keyring: KeyRing) -> None:
        self._settings = settings
        self._keyring = keyring

    def issue(self, user: User, *, audience: str, app_id: str, user_type: str) -> IssuedToken:
        """The audience-bound token issue-token hands out for `user` (a stored one, with a subject)."""
        settings = self._settings
        now = int(settings.clock())
        exp = now + settings.token_ttl
        jti = secrets.token_urlsafe(16)
        client_id = app_id or settings.default_client_id
        claims: dict[str, Any] = {
            "iss": settings.issuer_url,
            "sub": user.subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": jti,
            "tenant_id": user.tenant_id,
            "preferred_username": user.user_id,
            "azp": client_id,
            "client_id": client_id,
            "name": user.name or user.user_id,
            "user_type": user_type,
        }
        if user.email:
            claims["email"] = user.email
        profile = user.token_profile or settings.token_profile
        if profile == "access_token":
            claims["scope"] = settings.access_token_scope
            typ = "at+jwt"
        else:
            typ = "JWT"
        key = self._keyring.reserve(exp)
        token = sign_jwt(claims, key.private_key, alg=key.alg, headers={"kid": key.kid, "typ": typ})
        return IssuedToken(token=token, expires_at=exp, jti=jti)

    def mint(
        self,
        claims: Mapping[str, Any] | None,
        *,
        header: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        hmac_key: str | None = None,
        raw_header: str | None = None,
        raw_claims: str | None = None,
    ) -> str:
        """A token with the issuer's defaults overlaid by the caller's claims and header.

        Header `alg` picks the signature: the current key's alg (or, for an RSA key, any
        RS*/PS*), `HS*` with `hmac_key` (any bytes, PEM text included, so that RS/HS confusion
        tokens can be built), or `none` for an unsigned `header.payload.` token.

        `raw_header` / `raw_claims` replace `header` / `claims` (and the defaults) entirely: their
        exact text is what is encoded and signed, so tokens with duplicate members can be built.
        The raw header must be a JSON object; its `alg` (the last one, if repeated) picks the
        signature as above.
        """
        settings = self._settings
        if raw_claims is not None:
            payload_bytes = raw_claims.encode()
            parsed = _json_text(raw_claims, "raw_claims")
            exp = parsed.get("exp") if isinstance(parsed, dict) else None
        else:
            now = int(settings.clock())
            payload = _overlay(
                {
                    "iss": settings.issuer_url,
                    "iat": now,
                    "nbf": now,
                    "exp": now + (settings.token_ttl if ttl is None else ttl),
                    "jti": secrets.token_urlsafe(16),
                },
                claims or {},
            )
            payload_bytes = _json(payload)
            exp = payload.get("exp")
        key = self._keyring.reserve(_reservable_exp(exp))
        if raw_header is not None:
            header_bytes = raw_header.encode()
            final_header = _json_text(raw_header, "raw_header")
            if not isinstance(final_header, dict):
                raise MintError("raw_header must be a JSON object")
        else:
            final_header = _overlay({"alg": key.alg, "kid": key.kid, "typ": "JWT"}, header or {})
            header_bytes = _json(final_header)
        alg = final_header.get("alg")
        if not isinstance(alg, str):
            raise MintError("header alg must be a string")
        if hmac_key is not None and alg not in _HMAC_ALGORITHMS:
            raise MintError("hmac_key is only used with an HS256, HS384 or HS512 header alg")
        signing_input = f"{_b64url(header_bytes)}.{_b64url(payload_bytes)}".encode()
        if alg == "none":
            signature = b""
        elif alg in _HMAC_ALGORITHMS:
            if not hmac_key:
                raise MintError(f"a header alg of {alg} needs hmac_key")
            # Signed directly: PyJWT refuses PEM-looking HMAC keys, and building that confusion
            # token is exactly what this is for.
            algorithm = jwt.get_algorithm_by_name(alg)
            signature = hmac.new(hmac_key.encode(), signing_input, algorithm.hash_alg).digest()  # type: ignore[attr-defined]
        elif (
            alg == key.alg
            or (alg in _RSA_ALGORITHMS and isinstance(key.private_key, rsa.RSAPrivateKey))
            or (alg in _ED25519_ALGORITHMS and isinstance(key.private_key, ed25519.Ed25519PrivateKey))
        ):
            signature = jws_algorithm(alg).sign(signing_input, key.private_key)
        else:
            raise MintError(
                f"header alg {alg!r} cannot be signed with the current {key.alg} key;"
                " use the key's alg, HS* with hmac_key, or none"
            )
        return f"{signing_input.decode()}.{_b64url(signature)}"
