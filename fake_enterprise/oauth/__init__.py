"""The issuer's OAuth 2.1 / OpenID Connect authorization server (sign-in page, code + PKCE,
refresh rotation, RFC 8693 token exchange, dynamic registration, revocation, introspection)."""

from fake_enterprise.oauth.exchange import ACCESS_TOKEN_URN, ID_TOKEN_URN, TOKEN_EXCHANGE_GRANT
from fake_enterprise.oauth.metadata import authorization_server_metadata, openid_configuration
from fake_enterprise.oauth.server import AuthorizationServer

__all__ = [
    "ACCESS_TOKEN_URN",
    "ID_TOKEN_URN",
    "TOKEN_EXCHANGE_GRANT",
    "AuthorizationServer",
    "authorization_server_metadata",
    "openid_configuration",
]
