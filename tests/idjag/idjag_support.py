"""ID-JAG test support: our MCP server in `--auth id-jag` mode, and ID-JAGs minted by the real issuer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette

from fake_enterprise import AdminClient, IssuerSettings
from fake_enterprise import create_app as create_issuer_app
from fake_mcp_server import ServerSettings, create_app
from fake_mcp_server.authorization import AuthorizationServer, AuthorizationServerSettings, ClientCredentials
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread

ID_JAG_HEADER = {"typ": "oauth-id-jag+jwt"}
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
HOST_APP = ClientCredentials("host-app", "host-app-secret-7d1e")
OTHER_APP = ClientCredentials("other-app", "other-app-secret-52aa")


@dataclass
class RunningAS:
    """Our MCP server with its own authorization server."""

    served: ServedApp
    resource_url: str
    app: Starlette = field(repr=False)

    @property
    def authorization_server(self) -> AuthorizationServer:
        return self.app.state.authorization_server

    @property
    def issuer(self) -> str:
        return self.authorization_server.issuer

    @property
    def token_url(self) -> str:
        return self.issuer + "/token"


@dataclass
class RunningIdP:
    """Our issuer as the enterprise IdP: auto-login on, so code + PKCE needs no person."""

    served: ServedApp
    settings: IssuerSettings = field(repr=False)

    @property
    def url(self) -> str:
        return self.served.url

    def admin(self) -> AdminClient:
        return AdminClient(self.url, self.settings.admin_secret)


@contextmanager
def running_idp(**overrides: Any) -> Iterator[RunningIdP]:
    sock = bind_loopback()
    settings = IssuerSettings(
        issuer_url=socket_url(sock),
        secret="idjag-idp-inner-secret-3c0f",
        admin_secret="idjag-idp-admin-secret-9a4e",
        auto_login=True,
        **overrides,
    )
    served = start_in_thread(create_issuer_app(settings), sock)
    try:
        yield RunningIdP(served, settings)
    finally:
        served.stop()


@contextmanager
def running_as(issuer_url: str, **overrides: Any) -> Iterator[RunningAS]:
    """Our server in id-jag mode trusting `issuer_url`, with host-app and other-app provisioned."""
    sock = bind_loopback()
    resource_url = socket_url(sock) + "/mcp"
    fields: dict[str, Any] = {"trusted_idps": (issuer_url,), "clients": (HOST_APP, OTHER_APP), **overrides}
    settings = ServerSettings(
        issuer_url=issuer_url,
        resource_url=resource_url,
        authorization=AuthorizationServerSettings(**fields),
    )
    app = create_app(settings)
    served = start_in_thread(app, sock)
    try:
        yield RunningAS(served, resource_url, app)
    finally:
        served.stop()


class IdJagMinter:
    """ID-JAGs from the issuer's /admin/mint, valid for the authorization server `audience`, the
    `resource` and `client_id` unless overridden.

    Called as `mint(claims, header)` it is a `harness.idjag_conformance.IdJagMinter`.
    """

    def __init__(
        self, admin: AdminClient, *, audience: str, resource: str, client_id: str = HOST_APP.client_id
    ) -> None:
        self._admin = admin
        self._audience = audience
        self._resource = resource
        self._client_id = client_id

    @classmethod
    def for_server(cls, admin: AdminClient, server: RunningAS) -> IdJagMinter:
        return cls(admin, audience=server.issuer, resource=server.resource_url)

    def claims(self, user: str = "alice", tenant: str = "acme") -> dict[str, Any]:
        return {
            "sub": f"sub-{user}-{tenant}",
            "aud": self._audience,
            "resource": self._resource,
            "client_id": self._client_id,
            "scope": "notes.read notes.write",
            "tenant_id": tenant,
            "preferred_username": user,
            "email": f"{user}@{tenant}.test",
        }

    def __call__(
        self, claims: Mapping[str, Any] | None = None, header: Mapping[str, Any] | None = None, **options: Any
    ) -> str:
        return self._admin.mint(
            {**self.claims(), **(claims or {})}, header={**ID_JAG_HEADER, **(header or {})}, **options
        )

    def for_user(self, user: str, tenant: str = "acme") -> str:
        return self._admin.mint(self.claims(user, tenant), header=ID_JAG_HEADER)


def redeem(
    server: RunningAS,
    assertion: str,
    *,
    client: ClientCredentials = HOST_APP,
    **form: str,
) -> httpx.Response:
    """The jwt-bearer token request, client_secret_post."""
    data = {
        "grant_type": JWT_BEARER,
        "assertion": assertion,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        **form,
    }
    return httpx.post(server.token_url, data=data, timeout=10)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
