"""The OAuth 2.1 / OIDC authorization server of the issuer: its parts, and the routes it serves."""

from __future__ import annotations

import uuid
from typing import Any

from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.routes import cors_middleware
from mcp.server.auth.settings import ClientRegistrationOptions
from mcp.shared.auth import OAuthClientInformationFull
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_enterprise.crypto import DataCipher
from fake_enterprise.directory import Directory
from fake_enterprise.errors import IssuerError
from fake_enterprise.faults import FaultSwitch
from fake_enterprise.keyring import KeyRing
from fake_enterprise.oauth.access import UserAccess
from fake_enterprise.oauth.clients import ClientExistsError, ClientStore, new_client_secret
from fake_enterprise.oauth.endpoints import OAuthEndpoints
from fake_enterprise.oauth.exchange import TokenExchange
from fake_enterprise.oauth.grants import GrantStore
from fake_enterprise.oauth.id_jag import IdJagIssuer
from fake_enterprise.oauth.id_jag_policy import IdJagPolicy, IdJagPolicyStore
from fake_enterprise.oauth.metadata import (
    AUTHORIZATION_PATH,
    INTROSPECTION_PATH,
    REGISTRATION_PATH,
    REVOCATION_PATH,
    SCOPES,
    TOKEN_PATH,
    authorization_server_metadata,
)
from fake_enterprise.oauth.pages import Pages
from fake_enterprise.oauth.pending import PendingStore
from fake_enterprise.oauth.provider import DEFAULT_SCOPES, SIGN_IN_PATH, IssuerOAuthProvider
from fake_enterprise.oauth.tokens import OAuthTokens
from fake_enterprise.settings import IssuerSettings
from fake_enterprise.storage import Database

__all__ = ["AuthorizationServer"]

_CLIENT_FIELDS = (
    "client_id",
    "client_secret",
    "client_name",
    "redirect_uris",
    "grant_types",
    "token_endpoint_auth_method",
    "scope",
)
_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


class AuthorizationServer:
    """Clients, grants, tokens, the SDK provider and the endpoints, built over the issuer's storage."""

    def __init__(
        self,
        settings: IssuerSettings,
        db: Database,
        cipher: DataCipher,
        directory: Directory,
        keyring: KeyRing,
        faults: FaultSwitch,
    ) -> None:
        self.settings = settings
        self.clients = ClientStore(db, cipher, settings.clock)
        self.grants = GrantStore(db, settings.clock)
        self.id_jag_policies = IdJagPolicyStore(db)
        tokens = OAuthTokens(settings, keyring)
        self.provider = IssuerOAuthProvider(
            settings,
            self.clients,
            self.grants,
            tokens,
            UserAccess(directory, faults, settings.clock),
            PendingStore(db, self.clients, settings.clock),
        )
        self.exchange = TokenExchange(self.provider)
        IdJagIssuer(settings, tokens, self.id_jag_policies).register(self.exchange)
        self.pages = Pages(self.provider, directory)
        self.endpoints = OAuthEndpoints(self.provider, self.exchange, self.pages)

    def metadata(self) -> dict[str, Any]:
        return authorization_server_metadata(self.settings)

    def routes(self) -> list[Route]:
        endpoints = self.endpoints
        registration = RegistrationHandler(
            self.provider,
            ClientRegistrationOptions(enabled=True, valid_scopes=list(SCOPES), default_scopes=list(SCOPES)),
        )

        async def metadata(request: Request) -> Response:
            return JSONResponse(self.metadata(), headers={"Cache-Control": "public, max-age=3600"})

        # Endpoints a browser-based client (the MCP Inspector) calls from another origin get CORS.
        return [
            Route(
                "/.well-known/oauth-authorization-server",
                cors_middleware(metadata, ["GET", "OPTIONS"]),
                methods=["GET", "OPTIONS"],
            ),
            Route(AUTHORIZATION_PATH, endpoints.authorize, methods=["GET", "POST"]),
            Route(SIGN_IN_PATH, self.pages.show, methods=["GET"]),
            Route(SIGN_IN_PATH, self.pages.submit, methods=["POST"]),
            Route(
                TOKEN_PATH, cors_middleware(endpoints.token, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]
            ),
            Route(
                REGISTRATION_PATH,
                cors_middleware(registration.handle, ["POST", "OPTIONS"]),
                methods=["POST", "OPTIONS"],
            ),
            Route(
                REVOCATION_PATH,
                cors_middleware(endpoints.revoke, ["POST", "OPTIONS"]),
                methods=["POST", "OPTIONS"],
            ),
            Route(INTROSPECTION_PATH, endpoints.introspect, methods=["POST"]),
        ]

    # --- the admin API's clients ------------------------------------------------------------------

    def create_client(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Pre-register a client; the answer holds its secret, the only time it is shown."""
        unknown = sorted(set(fields) - set(_CLIENT_FIELDS))
        if unknown:
            raise IssuerError(400, "invalid_request", f"unknown field(s): {', '.join(unknown)}")
        method = fields.get("token_endpoint_auth_method", "client_secret_basic")
        if method not in _AUTH_METHODS:
            raise IssuerError(
                400,
                "invalid_request",
                f"token_endpoint_auth_method must be one of {', '.join(_AUTH_METHODS)}",
            )
        secret = None
        if method != "none":
            secret = fields.get("client_secret") or new_client_secret()
        elif fields.get("client_secret"):
            raise IssuerError(
                400, "invalid_request", "a client with token_endpoint_auth_method 'none' has no secret"
            )
        record = {
            "scope": " ".join(DEFAULT_SCOPES),
            **fields,
            "client_id": fields.get("client_id") or str(uuid.uuid4()),
            "client_secret": secret,
            "client_secret_expires_at": 0 if secret else None,
            "token_endpoint_auth_method": method,
            "client_id_issued_at": int(self.settings.clock()),
        }
        try:
            client = OAuthClientInformationFull.model_validate(record)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise IssuerError(400, "invalid_request", problems) from None
        try:
            self.clients.add(client, source="admin")
        except ClientExistsError as exc:
            raise IssuerError(409, "client_exists", str(exc)) from None
        return client.model_dump(mode="json", exclude_none=True)

    # --- the admin API's ID-JAG policies ------------------------------------------------------------

    def set_id_jag_policy(self, tenant_id: str, body: Any) -> dict[str, Any]:
        """Replace the tenant's ID-JAG allow-list (`id_jag_policy` has the shape)."""
        policy = IdJagPolicy.from_json(body)
        self.id_jag_policies.put(tenant_id, policy)
        return {"tenant_id": tenant_id, "configured": True, **policy.as_json()}

    def id_jag_policy(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's allow-list; `configured: false` (no client allowed anything) when never set."""
        policy = self.id_jag_policies.get(tenant_id)
        if policy is None:
            return {"tenant_id": tenant_id, "configured": False, "clients": {}}
        return {"tenant_id": tenant_id, "configured": True, **policy.as_json()}

    def list_clients(self) -> dict[str, Any]:
        return {"clients": self.clients.list()}

    def delete_client(self, client_id: str) -> dict[str, Any]:
        if not self.clients.delete(client_id):
            raise IssuerError(404, "unknown_client", f"no client {client_id!r}")
        return {"client_id": client_id, "deleted": True}
