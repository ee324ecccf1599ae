"""An MCP SDK OAuth client that signs in without a person: for tests, CI and the demo.

`OAuthClientProvider` (the mcp SDK's client: discovery, dynamic registration, code + PKCE,
refresh) hands an authorization URL to a "browser". Here the browser is an HTTP request that adds
`login_hint=<tenant>/<user>` and expects the issuer, running with auto-login, to redirect straight
back with the code, as a real browser would after the person signed in.

`sign_in_confidential` is the same sign-in without the SDK, for a confidential client of the issuer
itself (an enterprise-managed authorization host): code + PKCE, and the token response with the
user's ID token, which the host then exchanges for ID-JAGs.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

__all__ = [
    "AutoLoginBrowser",
    "MemoryTokenStorage",
    "OAuthLoginError",
    "auto_login_provider",
    "sign_in_confidential",
]

DEFAULT_REDIRECT_URI = "http://127.0.0.1:33418/callback"


class OAuthLoginError(Exception):
    """The headless sign-in did not come back with a code; the message says what came instead."""


class MemoryTokenStorage(TokenStorage):
    """Tokens and the registration of one client, kept in memory (one per provider)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    def __repr__(self) -> str:
        return (
            f"MemoryTokenStorage(registered={self.client_info is not None}, tokens={self.tokens is not None})"
        )

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class AutoLoginBrowser:
    """The redirect and callback handlers of an `OAuthClientProvider`, for an auto-login issuer."""

    def __init__(self, login_hint: str, *, timeout: float = 10.0) -> None:
        self.login_hint = login_hint
        self._timeout = timeout
        self._result: AuthorizationCodeResult | None = None
        self.visited: list[str] = []

    async def open(self, authorization_url: str) -> None:
        parts = urlsplit(authorization_url)
        query = parts.query + ("&" if parts.query else "") + urlencode({"login_hint": self.login_hint})
        url = parts._replace(query=query).geturl()
        self.visited.append(url)
        async with httpx2.AsyncClient(follow_redirects=False, timeout=self._timeout) as http:
            response = await http.get(url)
        location = response.headers.get("location")
        if response.status_code not in (302, 303) or not location:
            raise OAuthLoginError(
                f"the authorization endpoint answered {response.status_code} instead of redirecting back"
                " (does the issuer run with --auto-login, and does the hinted user exist?)"
            )
        params = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
        if "error" in params:
            description = params.get("error_description", "")
            raise OAuthLoginError(f"the issuer refused the sign-in: {params['error']} {description}".rstrip())
        if "code" not in params:
            raise OAuthLoginError("the redirect back carries no code")
        self._result = AuthorizationCodeResult(
            code=params["code"], state=params.get("state"), iss=params.get("iss")
        )

    async def callback(self) -> AuthorizationCodeResult:
        result, self._result = self._result, None
        if result is None:
            raise OAuthLoginError("no authorization response was received")
        return result


def auto_login_provider(
    server_url: str,
    login_hint: str,
    *,
    client_name: str = "mcp-idfwd headless client",
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    storage: MemoryTokenStorage | None = None,
) -> tuple[OAuthClientProvider, MemoryTokenStorage, AutoLoginBrowser]:
    """The SDK's OAuth client for `server_url`, signing in as `login_hint` (`<tenant>/<user>`)."""
    storage = storage or MemoryTokenStorage()
    browser = AutoLoginBrowser(login_hint)
    metadata = OAuthClientMetadata(
        client_name=client_name,
        redirect_uris=[AnyUrl(redirect_uri)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    provider = OAuthClientProvider(
        server_url,
        metadata,
        storage,
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )
    return provider, storage, browser


async def sign_in_confidential(
    issuer_url: str,
    client_id: str,
    client_secret: str,
    login_hint: str,
    *,
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    scope: str = "openid profile email",
    http_timeout: float = 10.0,
) -> dict[str, Any]:
    """Sign `login_hint` (`<tenant>/<user>`) in at an auto-login issuer as the confidential client
    `client_id` (code + PKCE S256, `client_secret_basic`): the token response, with `id_token`."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    async with httpx2.AsyncClient(follow_redirects=False, timeout=http_timeout) as http:
        discovery = await http.get(issuer_url.rstrip("/") + "/.well-known/openid-configuration")
        if discovery.status_code != 200:
            raise OAuthLoginError(f"the issuer's discovery document answered {discovery.status_code}")
        metadata = discovery.json()
        state = secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "login_hint": login_hint,
        }
        response = await http.get(metadata["authorization_endpoint"], params=query)
        location = response.headers.get("location")
        if response.status_code not in (302, 303) or not location:
            raise OAuthLoginError(
                f"the authorization endpoint answered {response.status_code} instead of redirecting back"
                " (does the issuer run with --auto-login, and does the hinted user exist?)"
            )
        params = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
        if "error" in params:
            description = params.get("error_description", "")
            raise OAuthLoginError(f"the issuer refused the sign-in: {params['error']} {description}".rstrip())
        if params.get("state") != state or "code" not in params:
            raise OAuthLoginError("the redirect back carries no code for this request")
        form = {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        tokens = await http.post(
            metadata["token_endpoint"], data=form, auth=httpx2.BasicAuth(client_id, client_secret)
        )
    answer = tokens.json() if tokens.headers.get("content-type", "").startswith("application/json") else {}
    if tokens.status_code != 200 or not isinstance(answer.get("id_token"), str):
        error = answer.get("error", "no ID token") if isinstance(answer, dict) else "no ID token"
        raise OAuthLoginError(f"the token endpoint answered {tokens.status_code} {error}")
    return answer
