"""The MCP server's own authorization server for enterprise-managed authorization (SEP-990, ID-JAG).

Clients present an Identity Assertion JWT Authorization Grant from a trusted IdP with the
RFC 7523 jwt-bearer grant and get an access token for this server (RFC 9068 `at+jwt`), which
the server's MCP endpoint verifies with `JWKSTokenVerifier` against this server's own JWKS.
"""

from fake_mcp_server.authorization.assertion import ID_JAG_TYPE, IdentityProviderUnavailable, IdJagValidator
from fake_mcp_server.authorization.provider import IdJagProvider
from fake_mcp_server.authorization.server import JWKS_PATH, METADATA_PATH, AuthorizationServer, issuer_for
from fake_mcp_server.authorization.settings import AuthorizationServerSettings, ClientCredentials

__all__ = [
    "ID_JAG_TYPE",
    "JWKS_PATH",
    "METADATA_PATH",
    "AuthorizationServer",
    "AuthorizationServerSettings",
    "ClientCredentials",
    "IdJagProvider",
    "IdJagValidator",
    "IdentityProviderUnavailable",
    "issuer_for",
]
