"""A local stack: the issuer and an MCP server trusting it, served in-process on loopback.

The demo, `up`, the pytest plugin and the benchmarks all run the same thing: an issuer
(`fake_enterprise`) and the reference MCP server (`fake_mcp_server`) whose verifier trusts
it, each on its own port. Sockets are bound before the apps are built, so every URL (the
issuer's `iss`, the server's resource URL) is known up front. On demand, a second MCP server
runs beside them in `--auth id-jag` mode (its own authorization server, trusting the issuer
for ID-JAGs), and `open_host` gives a host runtime that forwards in all three token modes.
Every request the servers answer is recorded in `calls`.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import fake_enterprise
import fake_mcp_server
from client_runtime import (
    AuthorizationServerClient,
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IdentityMode,
    IdJagSource,
    IdpClientSettings,
    IdpTokenExchange,
    IdTokenSource,
    MCPProvider,
    MCPToolRuntime,
    TokenBroker,
    TokenExchangeSource,
)
from fake_enterprise import AdminClient
from fake_mcp_server.authorization import AuthorizationServerSettings, ClientCredentials, issuer_for
from harness.access_log import AccessLogMiddleware, access_logger
from harness.call_log import CallLog
from harness.generated_secrets import new_secret
from harness.id_tokens import TOKEN_EXCHANGE_GRANT, HostClient, SignInIdTokens
from harness.oauth_login import DEFAULT_REDIRECT_URI
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread

__all__ = ["MCP_PATH", "TOKEN_MODES", "LocalStack", "StackHost", "StackSettings", "StackUser", "open_host"]

MCP_PATH = "/mcp"
# The modes in which the host forwards a token the IdP vouches for, in the order the demo shows them.
TOKEN_MODES = (IdentityMode.IDP_TOKEN, IdentityMode.TOKEN_EXCHANGE, IdentityMode.ID_JAG)
HOST_AS_CLIENT_ID = "mcp-idfwd-host"

_T = TypeVar("_T")


@dataclass(frozen=True)
class StackSettings:
    """How to run the stack. Port 0 picks a free port; a secret left `None` is generated.

    `secret` is the issuer's inner secret (hosts' `Enterprise-Api-Secret-Key`), `admin_secret`
    the one that opens its admin API.
    """

    host: str = "127.0.0.1"
    issuer_port: int = 0
    server_port: int = 0
    secret: str | None = field(default=None, repr=False)
    admin_secret: str | None = field(default=None, repr=False)
    db_path: str = ":memory:"
    alg: str = "RS256"
    token_ttl: int = 300
    token_profile: str = "id_token"
    log_level: str = "warning"
    # The issuer answers an authorization request with `login_hint=<tenant>/<user>` for an
    # existing user straight away, without its sign-in page (for headless OAuth clients).
    auto_login: bool = False
    # Hold the database's lock (`fake_enterprise.DatabaseLock`) while the issuer runs, so a second
    # issuer on the same `db_path` is refused (`up` sets it).
    exclusive_db: bool = False
    # One line per request on the loggers `mcp_idfwd.access.issuer` and `mcp_idfwd.access.server`
    # (`harness.access_log`: no token or secret in them).
    access_log: bool = False


@dataclass(frozen=True)
class StackUser:
    """A user the stack created at the issuer; `sub` is the opaque subject its tokens carry."""

    tenant_id: str
    user_id: str
    email: str | None = None
    name: str | None = None
    has_grant: bool = True
    sub: str = ""


@dataclass
class StackHost:
    """A host on the stack: one runtime forwarding in every token mode, and what it is made of.

    `providers[mode]` is the provider to call in `mode` (idp_token and token_exchange go to the
    default MCP server, id_jag to the id-jag one); `id_tokens` is the host's SSO session.
    """

    runtime: MCPToolRuntime
    id_tokens: SignInIdTokens | IdTokenSource
    brokers: dict[IdentityMode, TokenBroker]
    providers: dict[IdentityMode, MCPProvider]
    id_jag_source: IdJagSource


class LocalStack:
    """The issuer and the MCP server, started on demand and stopped together.

    `start()` (or `with LocalStack() as stack:`) starts both; `start_issuer()` alone is
    enough when no MCP server is needed; `start_id_jag_server()` adds the id-jag one. `stop()`
    is idempotent and stops whatever runs.
    """

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.secret: str = self.settings.secret or new_secret()
        self.admin_secret: str = self.settings.admin_secret or new_secret()
        self.calls = CallLog()
        self._issuer: ServedApp | None = None
        self._server: ServedApp | None = None
        self._id_jag_server: ServedApp | None = None
        self._id_jag_client: ClientCredentials | None = None
        self._host_client: HostClient | None = None
        self._admin: AdminClient | None = None
        self._user_numbers = itertools.count(1)

    def __repr__(self) -> str:
        issuer = self._issuer.url if self._issuer else None
        server = self.server_url if self._server else None
        return f"LocalStack(issuer_url={issuer!r}, server_url={server!r})"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Self:
        try:
            self.start_issuer()
            self.start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def start_issuer(self) -> Self:
        """Start the issuer if it is not running yet."""
        if self._issuer is not None:
            return self
        sock = bind_loopback(self.settings.host, self.settings.issuer_port)
        try:
            issuer_url = socket_url(sock)
            app = fake_enterprise.create_app(
                fake_enterprise.IssuerSettings(
                    issuer_url=issuer_url,
                    secret=self.secret,
                    admin_secret=self.admin_secret,
                    db_path=self.settings.db_path,
                    alg=self.settings.alg,
                    token_ttl=self.settings.token_ttl,
                    token_profile=self.settings.token_profile,
                    auto_login=self.settings.auto_login,
                    exclusive_db=self.settings.exclusive_db,
                )
            )
            self._issuer = start_in_thread(
                self._logged(self.calls.wrap(app, "idp"), "issuer"), sock, log_level=self.settings.log_level
            )
        except BaseException:
            sock.close()
            raise
        self._admin = AdminClient(self._issuer.url, self.admin_secret, inner_secret=self.secret)
        return self

    def start_server(self) -> Self:
        """Start the MCP server (and the issuer it trusts) if it is not running yet."""
        self.start_issuer()
        if self._server is not None:
            return self
        sock = bind_loopback(self.settings.host, self.settings.server_port)
        try:
            settings = fake_mcp_server.ServerSettings(
                issuer_url=self.issuer_url, resource_url=socket_url(sock) + MCP_PATH
            )
            app = fake_mcp_server.create_app(settings)
            self._server = start_in_thread(
                self._logged(self.calls.wrap(app, "mcp"), "server"), sock, log_level=self.settings.log_level
            )
        except BaseException:
            sock.close()
            raise
        return self

    def start_id_jag_server(self) -> Self:
        """Start the id-jag MCP server (`--auth id-jag`, trusting the issuer) if it is not running yet.

        It runs its own authorization server at its origin, with one provisioned confidential
        client for the host (`id_jag_client`).
        """
        self.start_issuer()
        if self._id_jag_server is not None:
            return self
        sock = bind_loopback(self.settings.host, 0)
        try:
            credentials = ClientCredentials(HOST_AS_CLIENT_ID, new_secret())
            settings = fake_mcp_server.ServerSettings(
                issuer_url=self.issuer_url,
                resource_url=socket_url(sock) + MCP_PATH,
                authorization=AuthorizationServerSettings(
                    trusted_idps=(self.issuer_url,), clients=(credentials,)
                ),
            )
            app = fake_mcp_server.create_app(settings)
            self._id_jag_server = start_in_thread(
                self._logged(self.calls.wrap(app, "mcp-id-jag"), "id-jag server"),
                sock,
                log_level=self.settings.log_level,
            )
        except BaseException:
            sock.close()
            raise
        self._id_jag_client = credentials
        return self

    def _logged(self, app: Any, role: str) -> Any:
        if not self.settings.access_log:
            return app
        return AccessLogMiddleware(app, access_logger(role))

    def stop(self) -> None:
        server, id_jag_server, issuer, admin = self._server, self._id_jag_server, self._issuer, self._admin
        self._server = self._id_jag_server = self._issuer = self._admin = None
        self._id_jag_client = self._host_client = None
        if id_jag_server is not None:
            id_jag_server.stop()
        if server is not None:
            server.stop()
        if admin is not None:
            admin.close()
        if issuer is not None:
            issuer.stop()

    @property
    def running(self) -> bool:
        return self._issuer is not None

    # --- where things are -------------------------------------------------------------------------

    @property
    def issuer_url(self) -> str:
        return self._require(self._issuer, "issuer").url

    @property
    def server_url(self) -> str:
        """The MCP endpoint, which is also the server's resource URL (the audience of its tokens)."""
        return self._require(self._server, "MCP server").url + MCP_PATH

    @property
    def id_jag_server_url(self) -> str:
        """The id-jag MCP server's endpoint (its resource URL); its authorization server is at its origin."""
        return self._require(self._id_jag_server, "id-jag MCP server").url + MCP_PATH

    @property
    def id_jag_client(self) -> AuthorizationServerClient:
        """The host's client at the id-jag server's authorization server."""
        credentials = self._require(self._id_jag_client, "id-jag MCP server")
        return AuthorizationServerClient(
            issuer=issuer_for(self.id_jag_server_url),
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
        )

    @property
    def admin(self) -> AdminClient:
        return self._require(self._admin, "issuer")

    def host_client(self) -> HostClient:
        """The host's confidential OAuth client at the IdP (code flow and token exchange), registered once."""
        if self._host_client is None:
            registered = self.admin.create_client(
                client_name="mcp-idfwd host",
                redirect_uris=[DEFAULT_REDIRECT_URI],
                grant_types=["authorization_code", "refresh_token", TOKEN_EXCHANGE_GRANT],
                token_endpoint_auth_method="client_secret_basic",
            )
            self._host_client = HostClient(
                self.issuer_url, registered["client_id"], registered["client_secret"]
            )
        return self._host_client

    @staticmethod
    def _require(value: _T | None, what: str) -> _T:
        if value is None:
            raise RuntimeError(f"the stack's {what} is not running; call start() first")
        return value

    # --- helpers ----------------------------------------------------------------------------------

    def create_user(
        self,
        tenant_id: str,
        user_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        grant: bool = True,
        grant_expires_at: int | None = None,
    ) -> StackUser:
        """Create a user at the issuer and, unless `grant=False`, store an SSO grant for them."""
        created = self.admin.create_user(tenant_id, user_id, email=email, name=name)
        if grant:
            self.admin.grant(tenant_id, user_id, expires_at=grant_expires_at)
        return StackUser(tenant_id, user_id, email=email, name=name, has_grant=grant, sub=created["sub"])

    def new_user(self, tenant_id: str = "acme", *, prefix: str = "user", grant: bool = True) -> StackUser:
        """A user with a fresh id (`<prefix>-<n>-<random>`), so tests sharing a stack never collide."""
        user_id = f"{prefix}-{next(self._user_numbers)}-{secrets.token_hex(3)}"
        return self.create_user(
            tenant_id, user_id, email=f"{user_id}@example.com", name=user_id.title(), grant=grant
        )

    def provider(
        self,
        tenant_id: str = "acme",
        *,
        identity_mode: IdentityMode | str = "idp_token",
        provider_id: str = "idfwd-local",
        server_url: str | None = None,
    ) -> MCPProvider:
        """An `MCPProvider` for this stack's MCP server, forwarding identities by default."""
        return MCPProvider(
            provider_id=provider_id,
            tenant_id=tenant_id,
            server_url=server_url or self.server_url,
            name="mcp-idfwd local stack",
            identity_mode=IdentityMode.parse(identity_mode),
        )

    def allow_id_jag(self, tenant_id: str = "acme") -> None:
        """Let the tenant's IdP policy give the host ID-JAGs for the id-jag server (deny by default)."""
        self.allow_id_jag_for(tenant_id, self.id_jag_server_url, self.id_jag_client)

    def allow_id_jag_for(self, tenant_id: str, server_url: str, client: AuthorizationServerClient) -> None:
        """Allow ID-JAGs for MCP server `server_url`; its authorization server knows the host as `client`."""
        self.admin.allow_id_jag(
            tenant_id,
            self.host_client().client_id,
            client.issuer,
            [server_url],
            audience_client_id=client.client_id,
        )

    @asynccontextmanager
    async def open_host(
        self, tenant_id: str = "acme", *, id_tokens: IdTokenSource | None = None
    ) -> AsyncIterator[StackHost]:
        """A host runtime forwarding in `idp_token`, `token_exchange` and `id_jag` mode (each its own cache).

        Starts the MCP server and the id-jag one if needed. Without `id_tokens`, users' ID tokens
        come from signing them in at the issuer (which must run with `auto_login`).
        """
        self.start_server()
        self.start_id_jag_server()
        if id_tokens is None:
            if not self.settings.auto_login:
                raise RuntimeError("signing users in needs the stack's issuer to run with auto_login=True")
            id_tokens = SignInIdTokens(self.host_client())
        self.allow_id_jag(tenant_id)
        async with open_host(
            issuer_url=self.issuer_url,
            inner_secret=self.secret,
            host=self.host_client(),
            id_tokens=id_tokens,
            servers={
                IdentityMode.IDP_TOKEN: self.server_url,
                IdentityMode.TOKEN_EXCHANGE: self.server_url,
                IdentityMode.ID_JAG: self.id_jag_server_url,
            },
            id_jag_clients={self.id_jag_server_url: self.id_jag_client},
            tenant_id=tenant_id,
        ) as host:
            yield host

    @asynccontextmanager
    async def open_runtime(self, *, app_id: str = "") -> AsyncIterator[MCPToolRuntime]:
        """An `MCPToolRuntime` whose tokens come from this stack's issuer (own token cache)."""
        settings = EnterpriseTokenSettings(
            issuer_url=self.issuer_url, inner_api_secret=self.secret, app_id=app_id
        )
        async with (
            EnterpriseTokenClient(settings) as token_client,
            MCPToolRuntime(broker=TokenBroker(token_client)) as runtime,
        ):
            yield runtime


@asynccontextmanager
async def open_host(
    *,
    issuer_url: str,
    inner_secret: str,
    host: HostClient,
    id_tokens: IdTokenSource,
    servers: Mapping[IdentityMode, str],
    id_jag_clients: Mapping[str, AuthorizationServerClient],
    tenant_id: str = "acme",
) -> AsyncIterator[StackHost]:
    """A host runtime forwarding in every token mode to `servers[mode]` (each mode its own token cache).

    The IdP is reached as `host` (its confidential client) for token exchange and ID-JAGs, and
    through the inner issue-token API with `inner_secret` for `idp_token`.
    """
    idp = IdpClientSettings(
        token_endpoint=host.token_endpoint, client_id=host.client_id, client_secret=host.client_secret
    )
    issuer_settings = EnterpriseTokenSettings(issuer_url=issuer_url, inner_api_secret=inner_secret)
    async with (
        EnterpriseTokenClient(issuer_settings) as token_client,
        IdpTokenExchange(idp) as exchange,
    ):
        id_jag_source = IdJagSource(exchange, id_tokens, id_jag_clients)
        brokers = {
            IdentityMode.IDP_TOKEN: TokenBroker(token_client),
            IdentityMode.TOKEN_EXCHANGE: TokenBroker(TokenExchangeSource(exchange, id_tokens)),
            IdentityMode.ID_JAG: TokenBroker(id_jag_source),
        }
        providers = {
            mode: MCPProvider(
                provider_id=f"idfwd-{mode.value}",
                tenant_id=tenant_id,
                server_url=servers[mode],
                name=f"mcp-idfwd local stack ({mode.value})",
                identity_mode=mode,
            )
            for mode in TOKEN_MODES
        }
        async with MCPToolRuntime(
            broker=brokers[IdentityMode.IDP_TOKEN],
            token_exchange_broker=brokers[IdentityMode.TOKEN_EXCHANGE],
            id_jag_broker=brokers[IdentityMode.ID_JAG],
        ) as runtime:
            yield StackHost(runtime, id_tokens, brokers, providers, id_jag_source)
