"""`AuthorizationServer`: the MCP server's own authorization server, on the mcp SDK's auth routes.

At the server's origin it serves RFC 8414 metadata, the token endpoint (RFC 7523 jwt-bearer
grant with ID-JAGs, confidential clients only), optionally RFC 7591 registration, and the JWKS
of the key that signs its access tokens. `token_verifier()` gives the MCP endpoint a
`JWKSTokenVerifier` that accepts exactly those access tokens.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.routes import TOKEN_PATH, build_metadata, cors_middleware, create_auth_routes
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import JWT_BEARER_GRANT_TYPE, OAuthMetadata
from pydantic import AnyHttpUrl, ConfigDict, TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fake_mcp_server.authorization.assertion import IdentityProviderUnavailable, IdJagValidator
from fake_mcp_server.authorization.clients import ClientRegistry
from fake_mcp_server.authorization.provider import IdJagProvider
from fake_mcp_server.authorization.replay import ReplayGuard
from fake_mcp_server.authorization.settings import AuthorizationServerSettings
from fake_mcp_server.authorization.tokens import ACCESS_TOKEN_ALGORITHM, AccessTokenIssuer
from fake_mcp_server.settings import VerifierSettings
from fake_mcp_server.verifier import JWKSTokenVerifier

__all__ = ["JWKS_PATH", "METADATA_PATH", "AuthorizationServer", "issuer_for"]

METADATA_PATH = "/.well-known/oauth-authorization-server"
JWKS_PATH = "/.well-known/jwks.json"
# Matches the verifier's default back-off after a failed JWKS fetch (min_jwks_refresh_interval).
_IDP_RETRY_AFTER = 5.0
_EXACT_URL = TypeAdapter(AnyHttpUrl, config=ConfigDict(url_preserve_empty_path=True))
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def issuer_for(resource_url: str) -> str:
    """The authorization server's issuer identifier: the origin of the server's resource URL."""
    parts = urlsplit(resource_url)
    return f"{parts.scheme}://{parts.netloc}"


class _Metadata(OAuthMetadata):
    """RFC 8414 metadata plus `jwks_uri`, which the SDK's model leaves out."""

    jwks_uri: AnyHttpUrl | None = None


class _IdentityProviderOutage:
    """Answers 503 when the IdP's keys cannot be fetched: the grant is not bad, it cannot be checked now."""

    def __init__(self, app: ASGIApp, retry_after: float) -> None:
        self._app = app
        self._retry_after = str(max(1, round(retry_after)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._app(scope, receive, send)
        except IdentityProviderUnavailable as exc:
            body = {"error": "temporarily_unavailable", "error_description": str(exc)}
            headers = {**_NO_STORE, "Retry-After": self._retry_after}
            await JSONResponse(body, status_code=503, headers=headers)(scope, receive, send)


class AuthorizationServer:
    """The authorization server of the MCP server at `resource_url`. Call `aclose()` when done."""

    def __init__(self, settings: AuthorizationServerSettings, resource_url: str) -> None:
        self.settings = settings
        self.resource_url = resource_url
        # Parsed the way the SDK's settings parse it, so the issuer keeps its exact spelling (no
        # "/" added): identifiers compare as strings.
        issuer_url = _EXACT_URL.validate_python(issuer_for(resource_url))
        self._issuer_url = issuer_url
        self.issuer = str(issuer_url)
        if urlsplit(resource_url).path in {TOKEN_PATH, "/authorize", "/register", JWKS_PATH, METADATA_PATH}:
            raise ValueError("resource_url's path is taken by the authorization server")
        self._http = httpx.AsyncClient(follow_redirects=False, timeout=5.0)
        self.validator = IdJagValidator(
            settings, issuer=self.issuer, resource_url=resource_url, http_client=self._http
        )
        self.tokens = AccessTokenIssuer(
            issuer=self.issuer,
            resource_url=resource_url,
            lifetime=settings.access_token_lifetime,
            clock=settings.clock,
        )
        # The MCP endpoint's verifier reads this server's JWKS in process: no request to itself,
        # which would fail behind a proxy that gives the server a public resource URL.
        self._jwks_client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=Starlette(routes=[self._jwks_route()])), follow_redirects=False
        )
        self.clients = ClientRegistry(settings.clients, max_registered=settings.max_registered_clients)
        self.provider = IdJagProvider(
            resource_url=resource_url,
            clients=self.clients,
            validator=self.validator,
            replay=ReplayGuard(settings.clock),
            tokens=self.tokens,
            leeway=settings.leeway,
        )

    def __repr__(self) -> str:
        return f"AuthorizationServer(issuer={self.issuer!r}, resource_url={self.resource_url!r})"

    @property
    def jwks_url(self) -> str:
        return self.issuer + JWKS_PATH

    def routes(self) -> list[BaseRoute]:
        """The SDK's auth routes (metadata made exact, token endpoint guarded) plus the JWKS."""
        registration = ClientRegistrationOptions(enabled=self.settings.allow_registration)
        routes: list[BaseRoute] = []
        for route in create_auth_routes(
            self.provider,
            issuer_url=self._issuer_url,
            client_registration_options=registration,
            identity_assertion_enabled=True,
        ):
            if route.path == METADATA_PATH:
                route = Route(
                    METADATA_PATH,
                    endpoint=cors_middleware(MetadataHandler(self._metadata()).handle, ["GET", "OPTIONS"]),
                    methods=["GET", "OPTIONS"],
                )
            elif route.path == TOKEN_PATH:
                guarded = _IdentityProviderOutage(route.app, retry_after=_IDP_RETRY_AFTER)
                route = Route(TOKEN_PATH, endpoint=guarded, methods=route.methods)
            routes.append(route)
        routes.append(self._jwks_route())
        return routes

    def token_verifier(self) -> JWKSTokenVerifier:
        """A verifier for this server's access tokens, reading the JWKS in process (no self-request)."""
        settings = VerifierSettings(
            audience=self.resource_url,
            issuer=self.issuer,
            jwks_url=self.jwks_url,
            algorithms=(ACCESS_TOKEN_ALGORITHM,),
            accepted_types=("at+jwt",),
            # Subjects are unique per IdP only, and this server serves the users of several.
            subject_qualifier="idp",
        )
        return JWKSTokenVerifier(settings, http_client=self._jwks_client)

    async def aclose(self) -> None:
        await self.validator.aclose()
        await self._http.aclose()
        await self._jwks_client.aclose()

    def _metadata(self) -> _Metadata:
        # The SDK advertises authorization_code and refresh_token on every server; this one only
        # serves the jwt-bearer grant. Its /authorize stays (the SDK's metadata model, which
        # clients parse with, requires the endpoint) and answers unsupported_response_type.
        metadata = build_metadata(
            self._issuer_url,
            None,
            ClientRegistrationOptions(enabled=self.settings.allow_registration),
            RevocationOptions(),
            supports_identity_assertion=True,
        )
        return _Metadata(
            **{**metadata.model_dump(), "grant_types_supported": [JWT_BEARER_GRANT_TYPE]},
            jwks_uri=AnyHttpUrl(self.jwks_url),
        )

    def _jwks_route(self) -> Route:
        document = self.tokens.jwks()

        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})

        return Route(JWKS_PATH, jwks, methods=["GET"])
