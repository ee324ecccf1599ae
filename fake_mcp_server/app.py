"""`create_app`: the reference MCP server (streamable HTTP), every request verified."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fake_mcp_server.authorization import AuthorizationServer
from fake_mcp_server.bearer import BearerAuthMiddleware
from fake_mcp_server.settings import ServerSettings
from fake_mcp_server.tools import NoteBook, register_tools
from fake_mcp_server.verifier import JWKSTokenVerifier

__all__ = ["create_app"]

_INSTRUCTIONS = "Every call acts as the user named by the verified Bearer token; try whoami."


def _package_version() -> str:
    try:
        return version("mcp-idfwd")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(settings: ServerSettings) -> Starlette:
    """A Starlette app serving MCP at the path of `settings.resource_url`, plus its RFC 9728 metadata.

    `app.state.verifier` is the `JWKSTokenVerifier` in use; it is closed when the app shuts down.
    With `settings.authorization`, the app also serves its own authorization server
    (`app.state.authorization_server`), and the verifier accepts that server's tokens.
    """
    authorization_server = (
        AuthorizationServer(settings.authorization, settings.resource_url) if settings.authorization else None
    )
    if authorization_server is not None:
        verifier = authorization_server.token_verifier()
        authorization_servers = [authorization_server.issuer]
    else:
        verifier = JWKSTokenVerifier(settings.verifier_settings())
        authorization_servers = [settings.issuer_url]
    server = MCPServer(
        settings.server_name,
        version=_package_version(),
        instructions=_INSTRUCTIONS,
        log_level=settings.log_level,
    )
    register_tools(server, NoteBook(settings.max_notes_per_user, settings.max_note_chars))

    resource = urlsplit(settings.resource_url)
    # Builds the SDK's session manager (with DNS-rebinding protection for a loopback host); we
    # mount its ASGI handler ourselves, behind our own Bearer middleware.
    server.streamable_http_app(streamable_http_path=resource.path, host=resource.hostname or "127.0.0.1")
    session_manager = server.session_manager
    metadata_url = str(build_resource_metadata_url(AnyHttpUrl(settings.resource_url)))

    routes = [
        Route(
            resource.path,
            endpoint=BearerAuthMiddleware(StreamableHTTPASGIApp(session_manager), verifier, metadata_url),
        ),
        _protected_resource_metadata(settings, authorization_servers, urlsplit(metadata_url).path),
    ]
    if authorization_server is not None:
        routes += authorization_server.routes()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with session_manager.run():
                yield
        finally:
            await verifier.aclose()
            if authorization_server is not None:
                await authorization_server.aclose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.verifier = verifier
    app.state.authorization_server = authorization_server
    return app


def _protected_resource_metadata(
    settings: ServerSettings, authorization_servers: list[str], path: str
) -> Route:
    """RFC 9728 metadata naming the authorization server exactly (identifiers compare as strings)."""
    document = {
        "resource": settings.resource_url,
        "authorization_servers": authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": settings.server_name,
    }

    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})

    return Route(path, metadata, methods=["GET"])
