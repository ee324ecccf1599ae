"""The issue-token call to the enterprise issuer, and the mapping of its answers to named errors."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import anyio
import httpx

from client_runtime.errors import (
    MCPIdentityRefreshError,
    MCPIssuerConfigError,
    MCPNoRefreshTokenError,
    MCPTokenError,
)
from client_runtime.urls import ALLOW_INSECURE_HTTP, needs_insecure_http

__all__ = ["EnterpriseTokenClient", "EnterpriseTokenSettings", "IssuedToken"]

ISSUE_TOKEN_PATH = "/inner/api/mcp/issue-token"
SECRET_HEADER = "Enterprise-Api-Secret-Key"
USER_TYPES = ("account", "end_user")
# Only short snake_case codes from the issuer are echoed into messages: free text could carry anything.
_SAFE_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class EnterpriseTokenSettings:
    """Where the issuer is and how to talk to it.

    `retries` extra attempts are made for transport errors and 5xx only, waiting
    `backoff * 2**attempt` seconds between them. `issuer_url` must be https unless its host is
    loopback or `allow_insecure_http` is set: the inner API secret and users' tokens travel on it.
    """

    issuer_url: str
    inner_api_secret: str = field(repr=False)
    app_id: str = ""
    timeout: float = 5.0
    retries: int = 2
    backoff: float = 0.2
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MCPIssuerConfigError("issuer_url must be an absolute http(s) URL")
        # The URL is shown in reprs and errors, so it must hold nothing secret; the inner API
        # secret has its own field. A query or fragment would also end up before the API path.
        if parts.username or parts.password or parts.query or parts.fragment:
            raise MCPIssuerConfigError(
                "issuer_url must be a base URL without credentials, query or fragment;"
                " pass the secret as inner_api_secret"
            )
        if needs_insecure_http(self.issuer_url) and not self.allow_insecure_http:
            raise MCPIssuerConfigError(
                f"issuer_url {self.issuer_url!r:.200} is plain http to a host off loopback, so the inner"
                f" API secret and users' tokens would travel in clear text; use https, or set"
                f" {ALLOW_INSECURE_HTTP}=True"
            )
        if not self.inner_api_secret:
            raise MCPIssuerConfigError("inner_api_secret is empty")
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise MCPIssuerConfigError("timeout must be positive; retries and backoff must not be negative")


@dataclass(frozen=True)
class IssuedToken:
    """A token the issuer minted for one user and one audience; `expires_at` is unix seconds."""

    token: str = field(repr=False)
    expires_at: float
    token_type: str = "Bearer"


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _SAFE_ERROR_CODE.match(code) else None


def _refusal(response: httpx.Response) -> MCPTokenError:
    """The named error for a non-200, non-5xx answer (never retried)."""
    status, code = response.status_code, _error_code(response)
    described = f"HTTP {status}" + (f" {code}" if code else "")
    if status == 428:
        return MCPNoRefreshTokenError(
            f"the user has no SSO grant at the issuer ({described})", status_code=status, error_code=code
        )
    if status == 401 and code == "invalid_client":
        return MCPIssuerConfigError(
            f"the issuer rejected this host's inner API secret ({described})",
            status_code=status,
            error_code=code,
        )
    if (status == 401 and code == "refresh_rejected") or status == 403:
        return MCPIdentityRefreshError(
            f"the issuer refused to mint for this user ({described})", status_code=status, error_code=code
        )
    return MCPTokenError(
        f"the issuer refused the token request ({described})", status_code=status, error_code=code
    )


def _parse_issued(response: httpx.Response) -> IssuedToken:
    def malformed(why: str) -> MCPTokenError:
        return MCPTokenError(f"malformed issue-token response: {why}", status_code=response.status_code)

    try:
        body: Any = json.loads(response.content)
    except ValueError:
        # Not `from exc`: a JSON error keeps the whole document, which may hold a token.
        raise malformed("body is not JSON") from None
    if not isinstance(body, dict):
        raise malformed("body is not a JSON object")
    token = body.get("token")
    if not isinstance(token, str) or not token.strip():
        raise malformed("'token' is missing, empty or not a string")
    if any(c.isspace() for c in token):
        raise malformed("'token' contains whitespace")
    expires_at = body.get("expires_at")
    if (
        isinstance(expires_at, bool)
        or not isinstance(expires_at, int | float)
        or not math.isfinite(expires_at)
    ):
        raise malformed("'expires_at' must be a number of unix seconds")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise malformed("'token_type' is not Bearer")
    return IssuedToken(token=token, expires_at=float(expires_at), token_type="Bearer")


class EnterpriseTokenClient:
    """Asks the issuer for a token for one user and one audience (`POST /inner/api/mcp/issue-token`).

    Every failure is a `MCPTokenError` subclass, never a raw httpx exception. Pass an
    `httpx.AsyncClient` to share a connection pool (it is then not closed here).
    """

    def __init__(
        self, settings: EnterpriseTokenSettings, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self._owns_client = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient()
        self._url = settings.issuer_url.rstrip("/") + ISSUE_TOKEN_PATH

    def __repr__(self) -> str:
        return f"EnterpriseTokenClient(issuer_url={self.settings.issuer_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def issue_token(
        self, *, tenant_id: str, user_id: str, audience: str, user_type: str = "account"
    ) -> IssuedToken:
        """A fresh token for `user_id` in `tenant_id`, addressed to `audience` (the MCP server URL)."""
        if user_type not in USER_TYPES:
            raise MCPTokenError(f"user_type must be one of {USER_TYPES}")
        body = {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "app_id": self.settings.app_id,
            "audience": audience,
            "user_type": user_type,
        }
        headers = {SECRET_HEADER: self.settings.inner_api_secret}
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                # Never follow a redirect, even on a shared client that does: httpx would resend
                # the secret header to wherever the Location points.
                response = await self._http.post(
                    self._url,
                    json=body,
                    headers=headers,
                    timeout=self.settings.timeout,
                    follow_redirects=False,
                )
            except httpx.TransportError as exc:
                if last:
                    raise MCPTokenError(
                        f"could not reach the issuer ({type(exc).__name__}) after {attempts} attempt(s)"
                    ) from exc
            else:
                if response.status_code == 200:
                    return _parse_issued(response)
                if response.status_code < 500:
                    raise _refusal(response)
                if last:
                    raise MCPTokenError(
                        f"the issuer failed (HTTP {response.status_code}) after {attempts} attempt(s)",
                        status_code=response.status_code,
                        error_code=_error_code(response),
                    )
            await anyio.sleep(self.settings.backoff * 2**attempt)
        raise AssertionError("unreachable: the loop returns or raises on its last attempt")
