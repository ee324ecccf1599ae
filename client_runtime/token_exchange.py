"""RFC 8693 token exchange at the enterprise IdP: the user's ID token in, an access token or an ID-JAG out.

`IdpTokenExchange` makes the call (as this host's confidential OAuth client) and maps every
answer to a named error. `TokenExchangeSource` is the `TokenSource` of the `token_exchange`
identity mode: the user's ID token, from the host's `IdTokenSource`, exchanged for an access
token bound to the MCP server (`resource`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, Self
from urllib.parse import urlsplit

import anyio
import httpx2

from client_runtime.errors import MCPIssuerConfigError, MCPTokenError
from client_runtime.issuer_client import IssuedToken
from client_runtime.oauth_errors import oauth_error_code, oauth_refusal
from client_runtime.urls import ALLOW_INSECURE_HTTP, needs_insecure_http

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ID_JAG_TOKEN_TYPE",
    "ID_TOKEN_TYPE",
    "ExchangedToken",
    "IdTokenSource",
    "IdpClientSettings",
    "IdpTokenExchange",
    "TokenExchangeSource",
    "id_token_of",
]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
_PARTY = "the IdP's token endpoint"


class IdTokenSource(Protocol):
    """Where the host gets a user's ID token from the IdP: its own SSO session for that user.

    Called with the tenant and user id a tool call is made for; returns a current ID token
    issued to this host's IdP client (its `aud` is the client id the exchange authenticates
    as). A user who is not signed in should raise `MCPNoRefreshTokenError`, and any other
    refusal an `MCPTokenError` subclass; anything else it raises is reported as an
    `MCPTokenError`, and the call is not made.
    """

    async def __call__(self, tenant_id: str, user_id: str) -> str: ...


async def id_token_of(source: IdTokenSource, tenant_id: str, user_id: str) -> str:
    """The user's ID token from `source`, every failure an `MCPTokenError` (fail closed)."""
    try:
        token = await source(tenant_id, user_id)
    except MCPTokenError:
        raise
    except Exception as exc:
        # Not chained: the host's exception may carry its session's secrets in its message.
        raise MCPTokenError(f"the host's ID token source failed ({type(exc).__name__})") from None
    if not isinstance(token, str) or not token or any(c.isspace() for c in token):
        raise MCPTokenError("the host's ID token source returned no usable token")
    return token


@dataclass(frozen=True)
class IdpClientSettings:
    """This host's confidential OAuth client at the IdP, and where the IdP's token endpoint is.

    `retries` extra attempts are made for transport errors and 5xx only, waiting
    `backoff * 2**attempt` seconds between them. `token_endpoint` must be https unless its host
    is loopback or `allow_insecure_http` is set: the client secret and users' tokens travel on it.
    """

    token_endpoint: str
    client_id: str
    client_secret: str = field(repr=False)
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    timeout: float = 5.0
    retries: int = 2
    backoff: float = 0.2
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.token_endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MCPIssuerConfigError("token_endpoint must be an absolute http(s) URL")
        if parts.username or parts.password or parts.fragment:
            raise MCPIssuerConfigError("token_endpoint must not carry credentials or a fragment")
        if needs_insecure_http(self.token_endpoint) and not self.allow_insecure_http:
            raise MCPIssuerConfigError(
                f"token_endpoint {self.token_endpoint!r:.200} is plain http to a host off loopback, so the"
                f" client secret and users' tokens would travel in clear text; use https, or set"
                f" {ALLOW_INSECURE_HTTP}=True"
            )
        if not self.client_id or not self.client_secret:
            raise MCPIssuerConfigError("client_id and client_secret must not be empty")
        if self.auth_method not in ("client_secret_basic", "client_secret_post"):
            raise MCPIssuerConfigError("auth_method must be client_secret_basic or client_secret_post")
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise MCPIssuerConfigError("timeout must be positive; retries and backoff must not be negative")


@dataclass(frozen=True)
class ExchangedToken:
    """What the IdP issued: the token, its type URN and when it expires (unix seconds).

    An answer without `expires_in` gets `expires_at` = the time it arrived, so it is used once
    and never cached.
    """

    token: str = field(repr=False)
    issued_token_type: str
    expires_at: float


def _parse_exchanged(response: httpx2.Response, requested: str, now: float) -> ExchangedToken:
    def malformed(why: str) -> MCPTokenError:
        return MCPTokenError(f"malformed token exchange response: {why}", status_code=response.status_code)

    try:
        body: Any = json.loads(response.content)
    except ValueError:
        raise malformed("body is not JSON") from None
    if not isinstance(body, dict):
        raise malformed("body is not a JSON object")
    token = body.get("access_token")
    if not isinstance(token, str) or not token or any(c.isspace() for c in token):
        raise malformed("'access_token' is missing, empty, not a string or has whitespace")
    if body.get("issued_token_type") != requested:
        raise malformed("'issued_token_type' is not the requested token type")
    token_type = body.get("token_type")
    # RFC 8693 §2.2.1: an access token is a Bearer token; an ID-JAG is not one ("N_A").
    if requested == ACCESS_TOKEN_TYPE and (not isinstance(token_type, str) or token_type.lower() != "bearer"):
        raise malformed("'token_type' is not Bearer")
    expires_in = body.get("expires_in", 0)
    number = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
    if not number or not math.isfinite(expires_in):
        raise malformed("'expires_in' must be a number of seconds")
    return ExchangedToken(token, requested, now + max(0.0, float(expires_in)))


class IdpTokenExchange:
    """RFC 8693 token exchange at the IdP's token endpoint, authenticated as this host's client.

    Every failure is an `MCPTokenError` subclass (see `client_runtime.oauth_errors.oauth_refusal`
    for the mapping of the IdP's OAuth errors), never a raw httpx exception. Pass an
    `httpx2.AsyncClient` to share a connection pool (it is then not closed here).
    """

    def __init__(
        self,
        settings: IdpClientSettings,
        *,
        http_client: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._owns_client = http_client is None
        self._http = http_client if http_client is not None else httpx2.AsyncClient()
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"IdpTokenExchange(token_endpoint={self.settings.token_endpoint!r},"
            f" client_id={self.settings.client_id!r})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def exchange(
        self,
        subject_token: str,
        *,
        requested_token_type: str,
        resource: str,
        audience: str | None = None,
        subject_token_type: str = ID_TOKEN_TYPE,
        scope: str | None = None,
    ) -> ExchangedToken:
        """Exchange `subject_token` for a `requested_token_type` token for `resource` (and `audience`)."""
        settings = self.settings
        form = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": subject_token,
            "subject_token_type": subject_token_type,
            "requested_token_type": requested_token_type,
            "resource": resource,
        }
        if audience is not None:
            form["audience"] = audience
        if scope is not None:
            form["scope"] = scope
        auth: httpx2.BasicAuth | None = None
        if settings.auth_method == "client_secret_basic":
            auth = httpx2.BasicAuth(settings.client_id, settings.client_secret)
        else:
            form |= {"client_id": settings.client_id, "client_secret": settings.client_secret}
        attempts = settings.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                # Never follow a redirect: httpx would resend the client's credentials to the Location.
                response = await self._http.post(
                    settings.token_endpoint,
                    data=form,
                    auth=auth,  # type: ignore[arg-type]
                    timeout=settings.timeout,
                    follow_redirects=False,
                )
            except httpx2.TransportError as exc:
                if last:
                    raise MCPTokenError(
                        f"could not reach the IdP's token endpoint ({type(exc).__name__})"
                        f" after {attempts} attempt(s)"
                    ) from None
            else:
                if response.status_code == 200:
                    return _parse_exchanged(response, requested_token_type, self._clock())
                if response.status_code < 500:
                    raise oauth_refusal(response, party=_PARTY)
                if last:
                    raise MCPTokenError(
                        f"the IdP's token endpoint failed (HTTP {response.status_code})"
                        f" after {attempts} attempt(s)",
                        status_code=response.status_code,
                        error_code=oauth_error_code(response),
                    )
            await anyio.sleep(settings.backoff * 2**attempt)
        raise AssertionError("unreachable: the loop returns or raises on its last attempt")


class TokenExchangeSource:
    """The `TokenSource` of the `token_exchange` mode, for a `TokenBroker`.

    Per token: the user's ID token from `id_tokens`, exchanged at the IdP for an access token
    whose `resource` (hence audience) is the MCP server. Only signed-in accounts have an ID
    token, so `user_type="end_user"` is refused before any I/O.
    """

    def __init__(self, exchange: IdpTokenExchange, id_tokens: IdTokenSource) -> None:
        self._exchange = exchange
        self._id_tokens = id_tokens

    def __repr__(self) -> str:
        return f"TokenExchangeSource({self._exchange!r})"

    async def issue_token(
        self, *, tenant_id: str, user_id: str, audience: str, user_type: str = "account"
    ) -> IssuedToken:
        if user_type != "account":
            raise MCPTokenError("token exchange forwards signed-in accounts only, not user_type end_user")
        id_token = await id_token_of(self._id_tokens, tenant_id, user_id)
        exchanged = await self._exchange.exchange(
            id_token, requested_token_type=ACCESS_TOKEN_TYPE, resource=audience
        )
        return IssuedToken(token=exchanged.token, expires_at=exchanged.expires_at)
