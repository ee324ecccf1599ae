"""A host's SSO session at our IdP, without a person: an `IdTokenSource` for tests, the demo and benchmarks.

`SignInIdTokens` signs a user in through the IdP's authorization code flow (PKCE, `login_hint`,
the issuer running with auto-login) as the host's confidential OAuth client, and keeps the ID
token until shortly before it expires, as a host keeps its users' SSO sessions. A real host
plugs its own session store in instead.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import jwt

from client_runtime import MCPNoRefreshTokenError, MCPTokenError
from harness.oauth_login import DEFAULT_REDIRECT_URI

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


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


class SignInIdTokens:
    """`IdTokenSource` over the IdP's code flow with auto-login: one sign-in per user while the token lasts.

    Concurrent requests for one user share one sign-in. `sign_ins` counts the sign-ins made.
    A user the IdP will not sign in (unknown, say) gets `MCPNoRefreshTokenError`; an IdP that
    cannot be reached or answers 5xx, a retriable `MCPTokenError`.
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
        verifier, challenge = _pkce()
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": secrets.token_hex(8),
            "scope": "openid profile email",
            "login_hint": login_hint,
        }
        try:
            async with httpx2.AsyncClient(timeout=self._timeout, follow_redirects=False) as http:
                answer = await http.get(client.authorization_endpoint, params=query)
                code = self._code(answer, login_hint)
                token_answer = await http.post(
                    client.token_endpoint,
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "code_verifier": verifier,
                        "redirect_uri": client.redirect_uri,
                    },
                    auth=httpx2.BasicAuth(client.client_id, client.client_secret),
                )
        except httpx2.TransportError as exc:
            raise MCPTokenError(
                f"could not reach the IdP to sign the user in ({type(exc).__name__})"
            ) from None
        if token_answer.status_code != 200:
            raise MCPTokenError(
                f"the IdP refused the sign-in's code (HTTP {token_answer.status_code})",
                status_code=token_answer.status_code,
            )
        id_token = token_answer.json().get("id_token")
        if not isinstance(id_token, str):
            raise MCPTokenError("the IdP's sign-in answer has no ID token")
        self.sign_ins += 1
        return id_token

    @staticmethod
    def _code(answer: httpx2.Response, login_hint: str) -> str:
        if answer.status_code >= 500:
            raise MCPTokenError(f"the IdP failed the sign-in (HTTP {answer.status_code})")
        location = answer.headers.get("location") if answer.status_code in (302, 303) else None
        params = {k: v[0] for k, v in parse_qs(urlsplit(location or "").query).items()}
        if "code" not in params:
            why = params.get("error") or f"HTTP {answer.status_code} without a redirect back"
            raise MCPNoRefreshTokenError(f"the IdP did not sign {login_hint} in ({why})")
        return params["code"]
