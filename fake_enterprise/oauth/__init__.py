"""The issuer's OAuth 2.1 / OpenID Connect authorization server (sign-in page, code + PKCE,
refresh rotation, RFC 8693 token exchange to access tokens and ID-JAGs, dynamic registration,
revocation, introspection)."""

from fake_enterprise.oauth.exchange import ACCESS_TOKEN_URN, ID_JAG_URN, ID_TOKEN_URN, TOKEN_EXCHANGE_GRANT
from fake_enterprise.oauth.id_jag import ID_JAG_MAX_LIFETIME
from fake_enterprise.oauth.id_jag_policy import IdJagPolicy
from fake_enterprise.oauth.metadata import authorization_server_metadata, openid_configuration
from fake_enterprise.oauth.server import AuthorizationServer

__all__ = [
    "ACCESS_TOKEN_URN",
    "ID_JAG_MAX_LIFETIME",
    "ID_JAG_URN",
    "ID_TOKEN_URN",
    "TOKEN_EXCHANGE_GRANT",
    "AuthorizationServer",
    "IdJagPolicy",
    "authorization_server_metadata",
    "openid_configuration",
]
