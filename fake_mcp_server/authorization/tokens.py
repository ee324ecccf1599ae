"""The authorization server's signing key and the RFC 9068 access tokens it signs with it."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

__all__ = ["ACCESS_TOKEN_ALGORITHM", "AccessTokenIssuer", "IssuedAccessToken"]

ACCESS_TOKEN_ALGORITHM = "ES256"
# Identity claims the access token carries over from the ID-JAG, so the server sees the same user.
_CARRIED_CLAIMS = ("tenant_id", "preferred_username", "email", "name")


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str = field(repr=False)
    expires_in: int
    scopes: tuple[str, ...]


class AccessTokenIssuer:
    """Signs `at+jwt` access tokens with a key made at start (tokens do not outlive a restart)."""

    def __init__(self, *, issuer: str, resource_url: str, lifetime: int, clock: Callable[[], float]) -> None:
        self._issuer = issuer
        self._resource_url = resource_url
        self._lifetime = lifetime
        self._clock = clock
        self._private_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = secrets.token_hex(8)

    def __repr__(self) -> str:
        return f"AccessTokenIssuer(issuer={self._issuer!r}, kid={self.kid!r})"

    def jwks(self) -> dict[str, Any]:
        public = ECAlgorithm.to_jwk(self._private_key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": ACCESS_TOKEN_ALGORITHM}]}

    def issue(self, assertion: dict[str, Any], *, client_id: str, scopes: Sequence[str]) -> IssuedAccessToken:
        """An access token for the ID-JAG's subject, for `client_id`, audience-restricted to the resource."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": assertion["sub"],
            "aud": self._resource_url,
            "iat": now,
            "nbf": now,
            "exp": now + self._lifetime,
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id,
            # The IdP that vouched for `sub`: subjects are unique per IdP only, so with several
            # trusted IdPs the server tells users apart by (idp, sub), not sub alone.
            "idp": assertion["iss"],
        }
        for name in _CARRIED_CLAIMS:
            value = assertion.get(name)
            if isinstance(value, str):
                claims[name] = value
        if scopes:
            claims["scope"] = " ".join(scopes)
        token = jwt.encode(
            claims,
            self._private_key,
            algorithm=ACCESS_TOKEN_ALGORITHM,
            headers={"kid": self.kid, "typ": "at+jwt"},
        )
        return IssuedAccessToken(token, self._lifetime, tuple(scopes))
