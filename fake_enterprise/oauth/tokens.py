"""The tokens the authorization server signs (RFC 9068 access tokens, OIDC ID tokens, ID-JAGs) and
reads back."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import jwt

from fake_enterprise.directory import User
from fake_enterprise.keyring import KeyRing
from fake_enterprise.settings import IssuerSettings
from fake_enterprise.signing import sign_jwt, verified_payload

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ID_JAG_TYPE",
    "ID_TOKEN_TYPE",
    "IssuedToken",
    "OAuthTokens",
    "UnreadableToken",
    "user_claims",
]

ACCESS_TOKEN_TYPE = "at+jwt"
ID_TOKEN_TYPE = "JWT"
ID_JAG_TYPE = "oauth-id-jag+jwt"


class UnreadableToken(Exception):
    """A token presented to us is not one we issued, or no longer valid; the reason is safe to show."""


def user_claims(user: User) -> dict[str, Any]:
    """Who the user is, in every token the authorization server signs: the one place `sub` comes from."""
    if user.subject is None:
        raise ValueError("a user read from the directory always has a subject")
    claims: dict[str, Any] = {
        "sub": user.subject,
        "tenant_id": user.tenant_id,
        "preferred_username": user.user_id,
        "name": user.name or user.user_id,
    }
    if user.email:
        claims["email"] = user.email
    return claims


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    jti: str
    expires_at: int
    expires_in: int


class OAuthTokens:
    def __init__(self, settings: IssuerSettings, keyring: KeyRing) -> None:
        self._settings = settings
        self._keyring = keyring

    def _sign(self, claims: dict[str, Any], typ: str) -> str:
        key = self._keyring.reserve(claims["exp"])
        return sign_jwt(claims, key.private_key, alg=key.alg, headers={"kid": key.kid, "typ": typ})

    def access_token(
        self, user: User, *, client_id: str, audience: str, scopes: tuple[str, ...], auth_time: int | None
    ) -> IssuedToken:
        """An RFC 9068 JWT access token for `user`, bound to `audience` (the RFC 8707 resource)."""
        settings = self._settings
        now = int(settings.clock())
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": settings.issuer_url,
            **user_claims(user),
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + settings.token_ttl,
            "jti": jti,
            "client_id": client_id,
            "azp": client_id,
            "scope": " ".join(scopes),
        }
        if auth_time is not None:
            claims["auth_time"] = auth_time
        token = self._sign(claims, ACCESS_TOKEN_TYPE)
        return IssuedToken(token=token, jti=jti, expires_at=claims["exp"], expires_in=settings.token_ttl)

    def id_token(self, user: User, *, client_id: str, nonce: str | None, auth_time: int) -> str:
        """An OIDC ID token for `client_id` (Core §2): `aud` is the client, `nonce` echoed."""
        settings = self._settings
        now = int(settings.clock())
        claims: dict[str, Any] = {
            "iss": settings.issuer_url,
            **user_claims(user),
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + settings.token_ttl,
            "auth_time": auth_time,
            "jti": secrets.token_urlsafe(16),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return self._sign(claims, ID_TOKEN_TYPE)

    def id_jag(self, claims: dict[str, Any], lifetime: int) -> IssuedToken:
        """An Identity Assertion JWT Authorization Grant: `claims` (who, for which authorization
        server, resource and client) plus `iss`, `iat`, `exp` and a fresh `jti`."""
        settings = self._settings
        now = int(settings.clock())
        jti = secrets.token_urlsafe(16)
        signed = {**claims, "iss": settings.issuer_url, "iat": now, "exp": now + lifetime, "jti": jti}
        token = self._sign(signed, ID_JAG_TYPE)
        return IssuedToken(token=token, jti=jti, expires_at=signed["exp"], expires_in=lifetime)

    def read(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header and claims of a token this issuer signed and that has not expired."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise UnreadableToken("the token is not a JWT") from None
        kid = header.get("kid")
        key = next((key for key in self._keyring.published() if key.kid == kid), None)
        if key is None:
            raise UnreadableToken("the token was not signed by this issuer")
        # Verified on the issuer's own JWS, which knows every alg it signs with (`Ed25519` too);
        # times are checked below against the issuer's own clock, which tests move by hand.
        try:
            claims = json.loads(verified_payload(token, key.private_key.public_key(), alg=key.alg))
        except (jwt.PyJWTError, ValueError):
            raise UnreadableToken("the token's signature or claims are invalid") from None
        if not isinstance(claims, dict):
            raise UnreadableToken("the token's signature or claims are invalid")
        if claims.get("iss") != self._settings.issuer_url:
            raise UnreadableToken("the token was issued by another issuer")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise UnreadableToken("the token has no expiry")
        if exp <= self._settings.clock():
            raise UnreadableToken("the token has expired")
        return header, claims
