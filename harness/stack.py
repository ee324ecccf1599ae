"""A local stack: the issuer and an MCP server trusting it, served in-process on loopback.

The demo, `up`, the pytest plugin and the benchmarks all run the same thing: an issuer
(`fake_enterprise`) and the reference MCP server (`fake_mcp_server`) whose verifier trusts
it, each on its own port. Sockets are bound before the apps are built, so every URL (the
issuer's `iss`, the server's resource URL) is known up front.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

import fake_enterprise
import fake_mcp_server
from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IdentityMode,
    MCPProvider,
    MCPToolRuntime,
    TokenBroker,
)
from fake_enterprise import AdminClient
from harness.access_log import AccessLogMiddleware
from harness.generated_secrets import new_secret
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread

__all__ = ["MCP_PATH", "LocalStack", "StackSettings", "StackUser"]

MCP_PATH = "/mcp"

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


class LocalStack:
    """The issuer and the MCP server, started on demand and stopped together.

    `start()` (or `with LocalStack() as stack:`) starts both; `start_issuer()` alone is
    enough when no MCP server is needed. `stop()` is idempotent and stops whatever runs.
    """

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.secret: str = self.settings.secret or new_secret()
        self.admin_secret: str = self.settings.admin_secret or new_secret()
        self._issuer: ServedApp | None = None
        self._server: ServedApp | None = None
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
                self._logged(app, "issuer"), sock, log_level=self.settings.log_level
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
                self._logged(app, "server"), sock, log_level=self.settings.log_level
            )
        except BaseException:
            sock.close()
            raise
        return self

    def _logged(self, app: Any, role: str) -> Any:
        if not self.settings.access_log:
            return app
        return AccessLogMiddleware(app, logging.getLogger(f"mcp_idfwd.access.{role}"))

    def stop(self) -> None:
        server, issuer, admin = self._server, self._issuer, self._admin
        self._server = self._issuer = self._admin = None
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
    def admin(self) -> AdminClient:
        return self._require(self._admin, "issuer")

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
