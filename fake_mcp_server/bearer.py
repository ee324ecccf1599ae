"""ASGI middleware that admits only requests carrying a valid Bearer token, and says why not (RFC 6750).

The mcp SDK's `RequireAuthMiddleware` answers every refusal with the same
`error="invalid_token", error_description="Authentication required"`, even when no token was
sent. This one follows RFC 6750 §3: no `error` when the request had no credentials,
`invalid_request` for a malformed Authorization header, `invalid_token` with the real (short,
non-sensitive) reason for a bad token, and always `resource_metadata` (RFC 9728) so a client can
find out which issuer to ask. On success it sets `scope["user"]`/`scope["auth"]` the way the SDK's
`AuthenticationMiddleware` does, so the SDK's session-to-principal binding and
`get_access_token()` keep working.
"""

from __future__ import annotations

import logging
import math

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.authentication import AuthCredentials
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from fake_mcp_server.errors import SigningKeysUnavailable, TokenRejected
from fake_mcp_server.token_verifier import BearerTokenVerifier

__all__ = ["BearerAuthMiddleware"]

logger = logging.getLogger(__name__)


class BearerAuthMiddleware:
    """Wrap `app` so it only ever sees requests whose Bearer token `verifier` accepts.

    `verifier` is any `BearerTokenVerifier`, e.g. `JWKSTokenVerifier`.
    """

    def __init__(self, app: ASGIApp, verifier: BearerTokenVerifier, resource_metadata_url: str) -> None:
        self._app = AuthContextMiddleware(app)
        self._verifier = verifier
        self._resource_metadata_url = resource_metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # MCP does not use WebSockets here; never let one past unauthenticated.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        authorizations = [value for name, value in scope["headers"] if name == b"authorization"]
        if not authorizations:
            await self._challenge(scope, receive, send, None, "a Bearer token is required")
            return
        if len(authorizations) > 1:
            await self._challenge(
                scope, receive, send, "invalid_request", "more than one Authorization header"
            )
            return
        scheme, _, credentials = authorizations[0].decode("latin-1").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer":
            await self._challenge(scope, receive, send, "invalid_request", "expected a Bearer token")
            return
        if not credentials or " " in credentials:
            await self._challenge(scope, receive, send, "invalid_request", "malformed Bearer credentials")
            return
        try:
            access_token = await self._verifier.verify(credentials)
        except SigningKeysUnavailable as exc:
            response = JSONResponse(
                {"error": "temporarily_unavailable", "error_description": exc.description},
                status_code=503,
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
            )
            await response(scope, receive, send)
            return
        except TokenRejected as exc:
            logger.info("bearer token refused: %s", exc.description)
            await self._challenge(scope, receive, send, "invalid_token", exc.description)
            return
        scope["user"] = AuthenticatedUser(access_token)
        scope["auth"] = AuthCredentials(access_token.scopes)
        await self._app(scope, receive, send)

    async def _challenge(
        self, scope: Scope, receive: Receive, send: Send, error: str | None, description: str
    ) -> None:
        # Descriptions are our own fixed phrases (no quotes or backslashes), safe in a quoted-string.
        params = [f'resource_metadata="{self._resource_metadata_url}"']
        if error is not None:
            params = [f'error="{error}"', f'error_description="{description}"', *params]
        body = {"error": error or "unauthorized", "error_description": description}
        response = JSONResponse(
            body, status_code=401, headers={"WWW-Authenticate": "Bearer " + ", ".join(params)}
        )
        await response(scope, receive, send)
