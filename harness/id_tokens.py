"""A host's SSO session at our IdP, without a person: an `IdTokenSource` for tests, the demo and benchmarks.

`SignInIdTokens` signs a user in through the IdP's authorization code flow (PKCE, `login_hint`,
the issuer running with auto-login) as the host's confidential OAuth client, and keeps the ID
token until shortly before it expires, as a host keeps its users' SSO sessions. A real host
plugs its own session store in instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import httpx2
import jwt

from client_runtime import MCPNoRefreshTokenError, MCPTokenError
from harness.oauth_login import DEFAULT_REDIRECT_URI, OAuthLoginError, sign_in_confidential

__all__ = ["HostClient", "SignInIdTokens"]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclass(frozen=True)
class HostClient:
    """The host's confidential OAuth client at the IdP (used to sign users in and to exchange)."""

    issuer_url: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str = DEFAULT_REDIRECT_URI

    @property
    def token_endpoint(self) -> str:
        return self.issuer_url.rstrip("/") + "/token"

    @property
    def authorization_endpoint(self) -> str:
        return self.issuer_url.rstrip("/") + "/authorize"


class SignInIdTokens:
    """`IdTokenSource` over the IdP's code flow with auto-login: one sign-in per user while the token lasts.

    Concurrent requests for one user share one sign-in (`harness.oauth_login.sign_in_confidential`).
    `sign_ins` counts the sign-ins made. A user the IdP will not sign in (unknown, say) gets
    `MCPNoRefreshTokenError`; an IdP that cannot be reached, a retriable `MCPTokenError`.
    """

    def __init__(
        self,
        client: HostClient,
        *,
        skew: float = 30.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self._skew = skew
        self._timeout = timeout
        self._clock = clock
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._locks: dict[tuple[str, str], anyio.Lock] = {}
        self.sign_ins = 0

    def __repr__(self) -> str:
        return f"SignInIdTokens(client_id={self.client.client_id!r}, signed_in={len(self._tokens)})"

    def forget(self, tenant_id: str, user_id: str) -> None:
        """Drop the user's ID token (as when their SSO session ends); the next call signs in again."""
        self._tokens.pop((tenant_id, user_id), None)

    async def __call__(self, tenant_id: str, user_id: str) -> str:
        key = (tenant_id, user_id)
        async with self._locks.setdefault(key, anyio.Lock()):
            held = self._tokens.get(key)
            if held is not None and held[1] - self._skew > self._clock():
                return held[0]
            token = await self._sign_in(f"{tenant_id}/{user_id}")
            expires_at = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)
            self._tokens[key] = (token, float(expires_at))
            return token

    async def _sign_in(self, login_hint: str) -> str:
        client = self.client
        try:
            answer = await sign_in_confidential(
                client.issuer_url,
                client.client_id,
                client.client_secret,
                login_hint,
                redirect_uri=client.redirect_uri,
                http_timeout=self._timeout,
            )
        except httpx2.TransportError as exc:
            raise MCPTokenError(
                f"could not reach the IdP to sign the user in ({type(exc).__name__})"
            ) from None
        except OAuthLoginError as exc:
            raise MCPNoRefreshTokenError(f"the IdP did not sign {login_hint} in: {exc}") from None
        self.sign_ins += 1
        return answer["id_token"]
