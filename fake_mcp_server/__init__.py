"""A real MCP server whose every request is checked by `JWKSTokenVerifier`.

`JWKSTokenVerifier` is the part MCP server authors take home: it implements the mcp SDK's
`TokenVerifier` protocol. `BearerAuthMiddleware` gives any `BearerTokenVerifier` RFC 6750
challenges. `create_app` builds the reference server around them; with
`ServerSettings(authorization=AuthorizationServerSettings(...))` the server also runs its own
authorization server that accepts ID-JAGs (`fake_mcp_server.authorization`).
"""

from fake_mcp_server.app import create_app
from fake_mcp_server.authorization import AuthorizationServerSettings, ClientCredentials
from fake_mcp_server.bearer import BearerAuthMiddleware
from fake_mcp_server.errors import IssuerCheckFailed, SigningKeysUnavailable, TokenRejected
from fake_mcp_server.settings import ServerSettings, VerifierSettings
from fake_mcp_server.token_verifier import BearerTokenVerifier
from fake_mcp_server.verifier import JWKSTokenVerifier

__all__ = [
    "AuthorizationServerSettings",
    "BearerAuthMiddleware",
    "BearerTokenVerifier",
    "ClientCredentials",
    "IssuerCheckFailed",
    "JWKSTokenVerifier",
    "ServerSettings",
    "SigningKeysUnavailable",
    "TokenRejected",
    "VerifierSettings",
    "create_app",
]
