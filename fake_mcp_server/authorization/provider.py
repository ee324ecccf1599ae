"""The mcp SDK provider behind the authorization server's routes: the jwt-bearer grant with ID-JAGs only."""

from __future__ import annotations

from typing import Any

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    IdentityAssertionParams,
    RefreshToken,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from fake_mcp_server.authorization.assertion import IdJagValidator
from fake_mcp_server.authorization.clients import ClientRegistry
from fake_mcp_server.authorization.replay import ReplayGuard
from fake_mcp_server.authorization.tokens import AccessTokenIssuer

__all__ = ["IdJagProvider"]

_ONLY_ID_JAG = "this authorization server only issues tokens for ID-JAGs (the jwt-bearer grant)"


def _granted_scopes(assertion: dict[str, Any], requested: list[str] | None) -> list[str]:
    """The ID-JAG's scopes, narrowed to the requested ones; asking for more is `invalid_scope`."""
    granted = str(assertion.get("scope") or "").split()
    if requested is None:
        return granted
    beyond = sorted(set(requested) - set(granted))
    if beyond:
        raise TokenError(
            error="invalid_scope",
            error_description=f"scope beyond what the assertion grants: {' '.join(beyond)}",
        )
    return [scope for scope in granted if scope in requested]


class IdJagProvider:
    """`OAuthAuthorizationServerProvider` for the SDK's `create_auth_routes`.

    Only `exchange_identity_assertion` issues tokens. There is no authorization endpoint flow,
    no refresh token (SEP-990 leaves session lifetime to the IdP, which re-issues ID-JAGs) and
    no opaque token to look up: the MCP endpoint verifies the JWT access tokens itself.
    """

    def __init__(
        self,
        *,
        resource_url: str,
        clients: ClientRegistry,
        validator: IdJagValidator,
        replay: ReplayGuard,
        tokens: AccessTokenIssuer,
        leeway: float,
    ) -> None:
        self._resource_url = resource_url
        self._clients = clients
        self._validator = validator
        self._replay = replay
        self._tokens = tokens
        self._leeway = leeway

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self._clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        self._clients.register(client_info)

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        raise AuthorizeError(error="unsupported_response_type", error_description=_ONLY_ID_JAG)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        return None

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        raise TokenError(error="unsupported_grant_type", error_description=_ONLY_ID_JAG)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        return None

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        raise TokenError(error="unsupported_grant_type", error_description=_ONLY_ID_JAG)

    async def load_access_token(self, token: str) -> AccessToken | None:
        return None

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        return None

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        if params.resource is not None and params.resource != self._resource_url:
            raise TokenError(
                error="invalid_target",
                error_description=f"this server only issues tokens for {self._resource_url}",
            )
        assert client.client_id is not None  # the SDK's authenticator found the client by its id
        assertion = await self._validator.validate(params.assertion, client_id=client.client_id)
        scopes = _granted_scopes(assertion, params.scopes)
        # Remembered until the verifier would refuse it anyway (exp plus the leeway it allows).
        if not self._replay.first_use(assertion["iss"], assertion["jti"], assertion["exp"] + self._leeway):
            raise TokenError(error="invalid_grant", error_description="the assertion has already been used")
        issued = self._tokens.issue(assertion, client_id=client.client_id, scopes=scopes)
        return OAuthToken(
            access_token=issued.token,
            token_type="Bearer",
            expires_in=issued.expires_in,
            scope=" ".join(issued.scopes) or None,
        )
