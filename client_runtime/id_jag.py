"""The `id_jag` identity mode: enterprise-managed authorization (SEP-990) for one user and one MCP server.

Per token: the user's ID token (the host's `IdTokenSource`) is exchanged at the IdP for an
ID-JAG (`requested_token_type=...:id-jag`, `audience` = the server's authorization server,
`resource` = the server), which the mcp SDK's `IdentityAssertionOAuthProvider` presents to
that authorization server with the RFC 7523 jwt-bearer grant for the server's access token.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

import httpx2
from mcp.client.auth import OAuthFlowError, OAuthTokenError, TokenStorage
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from client_runtime.errors import MCPIssuerConfigError, MCPTokenError
from client_runtime.issuer_client import IssuedToken
from client_runtime.oauth_errors import oauth_error_code, oauth_refusal
from client_runtime.token_exchange import (
    ID_JAG_TOKEN_TYPE,
    ExchangedToken,
    IdpTokenExchange,
    IdTokenSource,
    id_token_of,
)
from client_runtime.urls import ALLOW_INSECURE_HTTP, needs_insecure_http

__all__ = ["AuthorizationServerClient", "IdJagSource"]

_PARTY = "the MCP server's authorization server"


@dataclass(frozen=True)
class AuthorizationServerClient:
    """How this host is registered at one MCP server's own authorization server.

    `issuer` is that authorization server's issuer identifier: configuration, not discovery
    (SEP-990), so neither the MCP server nor anyone else can send the ID-JAG and the secret
    elsewhere. It must be https unless its host is loopback or `allow_insecure_http` is set.
    """

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_post"
    scope: str | None = None
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MCPIssuerConfigError("issuer must be an absolute http(s) URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise MCPIssuerConfigError("issuer must not carry credentials, a query or a fragment")
        if needs_insecure_http(self.issuer) and not self.allow_insecure_http:
            raise MCPIssuerConfigError(
                f"issuer {self.issuer!r:.200} is plain http to a host off loopback, so the client secret"
                f" and ID-JAGs would travel in clear text; use https, or set {ALLOW_INSECURE_HTTP}=True"
            )
        if not self.client_id or not self.client_secret:
            raise MCPIssuerConfigError("client_id and client_secret must not be empty")
        if self.auth_method not in ("client_secret_basic", "client_secret_post"):
            raise MCPIssuerConfigError("auth_method must be client_secret_basic or client_secret_post")


class _GrantKey(NamedTuple):
    tenant_id: str
    user_id: str
    server_url: str
    issuer: str


class _OneFlightStorage(TokenStorage):
    """The SDK provider's storage for one flight: the access token it obtained, nothing kept after."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None

    def __repr__(self) -> str:
        return f"_OneFlightStorage(tokens={'<hidden>' if self.tokens else None})"

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        return None


class IdJagSource:
    """The `TokenSource` of the `id_jag` mode, for a `TokenBroker` (which caches the access token
    per user and server, with single flight).

    `servers` maps each MCP server URL (a provider's `server_url`) to this host's client at its
    authorization server; a server not in it is refused with `MCPIssuerConfigError`. An ID-JAG
    is single use (the authorization server refuses a replayed `jti`), so it is kept only from
    its issue to its redemption: if the authorization server could not be asked (transport
    error, 5xx), the next try for the same user and server presents the same unexpired ID-JAG
    instead of asking the IdP again; once redeemed or refused, it is forgotten. At most
    `max_pending` such ID-JAGs are kept. An access token without `expires_in` is not cached.
    """

    def __init__(
        self,
        exchange: IdpTokenExchange,
        id_tokens: IdTokenSource,
        servers: Mapping[str, AuthorizationServerClient],
        *,
        http_client: httpx2.AsyncClient | None = None,
        timeout: float = 5.0,
        skew: float = 30.0,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._exchange = exchange
        self._id_tokens = id_tokens
        self._servers = dict(servers)
        self._http = http_client
        self._timeout = timeout
        self._skew = skew
        self._max_pending = max_pending
        self._clock = clock
        self._pending: OrderedDict[_GrantKey, ExchangedToken] = OrderedDict()

    def __repr__(self) -> str:
        return f"IdJagSource({self._exchange!r}, servers={sorted(self._servers)!r})"

    @property
    def pending_grants(self) -> int:
        """How many issued ID-JAGs wait for a redemption that failed for want of an answer."""
        return len(self._pending)

    async def issue_token(
        self, *, tenant_id: str, user_id: str, audience: str, user_type: str = "account"
    ) -> IssuedToken:
        if user_type != "account":
            raise MCPTokenError("id_jag mode forwards signed-in accounts only, not user_type end_user")
        client = self._servers.get(audience)
        if client is None:
            raise MCPIssuerConfigError(
                f"id_jag mode has no authorization-server client configured for {audience!r:.200}"
            )
        key = _GrantKey(tenant_id, user_id, audience, client.issuer)
        storage = _OneFlightStorage()

        async def assertion(issuer: str, resource: str) -> str:
            return await self._id_jag(key, issuer, resource)

        provider = IdentityAssertionOAuthProvider(
            server_url=audience,
            storage=storage,
            client_id=client.client_id,
            client_secret=client.client_secret,
            issuer=client.issuer,
            assertion_provider=assertion,
            scope=client.scope,
            token_endpoint_auth_method=client.auth_method,
        )
        if self._http is None:
            async with httpx2.AsyncClient(timeout=self._timeout) as http:
                await self._run_grant(provider, audience, key, http)
        else:
            await self._run_grant(provider, audience, key, self._http)
        tokens = storage.tokens
        if tokens is None:
            raise MCPTokenError(f"{_PARTY} issued no access token")
        now = self._clock()
        expires_at = now + tokens.expires_in if tokens.expires_in and tokens.expires_in > 0 else now
        return IssuedToken(token=tokens.access_token, expires_at=expires_at)

    async def _id_jag(self, key: _GrantKey, issuer: str, resource: str) -> str:
        pending = self._pending.get(key)
        if pending is not None and pending.expires_at - self._skew > self._clock():
            return pending.token
        id_token = await id_token_of(self._id_tokens, key.tenant_id, key.user_id)
        grant = await self._exchange.exchange(
            id_token, requested_token_type=ID_JAG_TOKEN_TYPE, resource=resource, audience=issuer
        )
        self._pending[key] = grant
        self._pending.move_to_end(key)
        while len(self._pending) > self._max_pending:
            self._pending.popitem(last=False)
        return grant.token

    async def _run_grant(
        self,
        provider: IdentityAssertionOAuthProvider,
        server_url: str,
        key: _GrantKey,
        http: httpx2.AsyncClient,
    ) -> None:
        """Drive the SDK provider's flow, sending its requests and mapping every answer to a named error.

        An MCP server in this mode refuses a request without its access token (401), and that
        refusal is what starts the provider's grant. It is known in advance, so it is handed to
        the provider rather than asked of the server: the access token is obtained before the
        MCP session opens, under the broker's single flight, and every failure is seen here.
        """
        request = httpx2.Request("POST", server_url)
        flow = provider.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            outgoing = await flow.asend(httpx2.Response(401, request=outgoing))
            while outgoing is not request:
                response = await self._send(http, outgoing)
                if outgoing.method == "POST":  # the token request (metadata requests are GETs)
                    self._settle(key, response)
                elif response.status_code >= 500:
                    raise MCPTokenError(
                        f"{_PARTY}'s metadata could not be read (HTTP {response.status_code})",
                        status_code=response.status_code,
                    )
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            raise MCPTokenError(f"{_PARTY} flow ended without an access token") from None
        except OAuthFlowError as exc:
            # The configured issuer serves no metadata, or metadata naming another issuer or a
            # token endpoint off its origin: the host's configuration is wrong.
            raise MCPIssuerConfigError(f"{_PARTY} at the configured issuer is unusable: {exc}") from None
        except OAuthTokenError:
            raise MCPTokenError(f"malformed answer from {_PARTY}'s token endpoint") from None
        finally:
            await flow.aclose()

    async def _send(self, http: httpx2.AsyncClient, request: httpx2.Request) -> httpx2.Response:
        try:
            return await http.send(request, follow_redirects=False)
        except httpx2.TransportError as exc:
            raise MCPTokenError(f"could not reach {_PARTY} ({type(exc).__name__})") from None

    def _settle(self, key: _GrantKey, response: httpx2.Response) -> None:
        """After the token request: forget the ID-JAG unless it went unanswered; map a refusal."""
        status = response.status_code
        if status >= 500:
            raise MCPTokenError(
                f"{_PARTY}'s token endpoint failed (HTTP {status})",
                status_code=status,
                error_code=oauth_error_code(response),
            )
        self._pending.pop(key, None)
        if status != 200:
            raise oauth_refusal(response, party=_PARTY)
