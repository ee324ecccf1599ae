"""Helpers for the console's tests: a running issuer, a console session over httpx, a small OAuth flow."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from issuer_fixtures import FakeClock, RunningIssuer, StartIssuer  # noqa: F401 (re-exported)

SECRET = "console-test-secret-5a1d"
ADMIN_SECRET = "console-test-admin-secret-c07e"
AUDIENCE = "http://127.0.0.1:9/mcp"
REDIRECT_URI = "http://127.0.0.1:53682/callback"
SESSION_COOKIE = "mcp_idfwd_console"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "the page has no CSRF token"
    return match.group(1)


class ConsoleBrowser:
    """The console as a browser without JavaScript sees it: cookies kept, redirects not followed."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def sign_in_page(self) -> httpx.Response:
        return self.http.get("/console/sign-in")

    def sign_in(self, admin_secret: str = ADMIN_SECRET) -> httpx.Response:
        token = csrf_token(self.sign_in_page().text)
        return self.http.post("/console/sign-in", data={"csrf_token": token, "admin_secret": admin_secret})

    def page(self) -> httpx.Response:
        return self.http.get("/console")

    def post(
        self, path: str, data: dict[str, str], *, csrf: str | None = "page", **kwargs: Any
    ) -> httpx.Response:
        """Post a console form; `csrf="page"` takes the token from the current page, None sends none."""
        if csrf == "page":
            page = self.page()
            assert page.status_code == 200, page.status_code
            csrf = csrf_token(page.text)
        form = dict(data) if csrf is None else {"csrf_token": csrf, **data}
        return self.http.post(path, data=form, **kwargs)


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def oauth_sign_in(http: httpx.Client, issuer_url: str, login_hint: str, resource: str) -> dict[str, Any]:
    """Register a public client, sign `login_hint` in (auto-login) and redeem the code: the token answer."""
    registered = http.post(
        f"{issuer_url}/register",
        json={
            "client_name": "console test client",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        },
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    authorize = http.get(
        f"{issuer_url}/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
            "scope": "openid profile",
            "resource": resource,
            "login_hint": login_hint,
        },
    )
    assert authorize.status_code == 302, authorize.text
    code = query_of(authorize.headers["location"])["code"]
    answer = http.post(
        f"{issuer_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "resource": resource,
        },
    )
    assert answer.status_code == 200, answer.text
    return {**answer.json(), "client_id": client_id}
