"""Helpers for the OAuth tests: PKCE, a raw OAuth client over httpx, the running stack's handles."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from issuer_fixtures import FakeClock, RunningIssuer, StartIssuer  # noqa: F401 (re-exported)

SECRET = "oauth-test-secret-7d2e"
ADMIN_SECRET = "oauth-test-admin-secret-41c9"
REDIRECT_URI = "http://127.0.0.1:53682/callback"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_URN = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_URN = "urn:ietf:params:oauth:token-type:id_token"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


@dataclasses.dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).decode().rstrip("="))


@dataclasses.dataclass
class OAuthClient:
    """A raw OAuth client of one issuer: each protocol step as one call, answers left to the test."""

    http: httpx.Client
    issuer_url: str
    client_id: str
    client_secret: str | None = None
    redirect_uri: str = REDIRECT_URI
    auth_method: str = "none"

    def _auth(self, data: dict[str, str]) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        if self.auth_method == "client_secret_basic":
            assert self.client_secret is not None
            return data, httpx.BasicAuth(self.client_id, self.client_secret)
        data = {"client_id": self.client_id, **data}
        if self.auth_method == "client_secret_post":
            assert self.client_secret is not None
            data["client_secret"] = self.client_secret
        return data, None

    def authorize(self, pkce: Pkce, **params: str) -> httpx.Response:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "state": "state-" + secrets.token_hex(4),
            **params,
        }
        return self.http.get(f"{self.issuer_url}/authorize", params=query)

    def code(self, pkce: Pkce, login_hint: str, **params: str) -> dict[str, str]:
        """The redirect's parameters after an auto-login sign-in (asserting it succeeded)."""
        response = self.authorize(pkce, login_hint=login_hint, **params)
        assert response.status_code == 302, response.text
        answer = query_of(response.headers["location"])
        assert "code" in answer, answer
        return answer

    def token(self, **data: str) -> httpx.Response:
        form, auth = self._auth(data)
        return self.http.post(f"{self.issuer_url}/token", data=form, auth=auth)  # type: ignore[arg-type]

    def exchange_code(self, code: str, pkce: Pkce, **extra: str) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": pkce.verifier}
        data.setdefault("redirect_uri", self.redirect_uri)
        return self.token(**{**data, **extra})

    def sign_in(self, login_hint: str, resource: str, **params: str) -> dict[str, Any]:
        """Authorization code + PKCE end to end: the token response."""
        pkce = Pkce.new()
        answer = self.code(pkce, login_hint, resource=resource, **params)
        response = self.exchange_code(answer["code"], pkce, resource=resource)
        assert response.status_code == 200, response.text
        return response.json()

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.token(grant_type="refresh_token", refresh_token=refresh_token)

    def exchange(self, subject_token: str, subject_token_type: str, **params: str) -> httpx.Response:
        return self.token(
            grant_type=TOKEN_EXCHANGE,
            subject_token=subject_token,
            subject_token_type=subject_token_type,
            **params,
        )

    def post(self, path: str, **data: str) -> httpx.Response:
        form, auth = self._auth(data)
        return self.http.post(f"{self.issuer_url}{path}", data=form, auth=auth)  # type: ignore[arg-type]


def register(http: httpx.Client, issuer_url: str, **metadata: Any) -> OAuthClient:
    """Register a client dynamically (RFC 7591); public unless `token_endpoint_auth_method` says otherwise."""
    body = {
        "client_name": "test client",
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token", TOKEN_EXCHANGE],
        **metadata,
    }
    response = http.post(f"{issuer_url}/register", json=body)
    assert response.status_code == 201, response.text
    info = response.json()
    return OAuthClient(
        http,
        issuer_url,
        info["client_id"],
        info.get("client_secret"),
        redirect_uri=body["redirect_uris"][0],
        auth_method=info["token_endpoint_auth_method"],
    )


def assert_oauth_error(response: httpx.Response, error: str, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("cache-control") == "no-store"
    body = response.json()
    assert body["error"] == error, body
    return body
