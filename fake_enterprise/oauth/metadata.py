"""RFC 8414 authorization server metadata and OIDC discovery: what works here, and nothing else."""

from __future__ import annotations

from typing import Any

from fake_enterprise.oauth.exchange import ID_JAG_URN, TOKEN_EXCHANGE_GRANT
from fake_enterprise.oauth.provider import SUPPORTED_SCOPES
from fake_enterprise.settings import SIGNING_ALGORITHMS, IssuerSettings

__all__ = [
    "AUTHORIZATION_PATH",
    "INTROSPECTION_PATH",
    "REGISTRATION_PATH",
    "REVOCATION_PATH",
    "SCOPES",
    "TOKEN_PATH",
    "authorization_server_metadata",
    "openid_configuration",
]

AUTHORIZATION_PATH = "/authorize"
TOKEN_PATH = "/token"
REGISTRATION_PATH = "/register"
REVOCATION_PATH = "/revoke"
INTROSPECTION_PATH = "/introspect"

SCOPES = SUPPORTED_SCOPES
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
CLAIMS = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "azp",
    "client_id",
    "scope",
    "tenant_id",
    "preferred_username",
    "email",
    "name",
    "user_type",
)


def authorization_server_metadata(settings: IssuerSettings) -> dict[str, Any]:
    base = settings.base_url
    return {
        "issuer": settings.issuer_url,
        "authorization_endpoint": base + AUTHORIZATION_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "jwks_uri": settings.jwks_uri,
        "registration_endpoint": base + REGISTRATION_PATH,
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", TOKEN_EXCHANGE_GRANT],
        # draft-ietf-oauth-identity-chaining, as draft-ietf-oauth-identity-assertion-authz-grant §6.1
        # asks of an IdP that issues ID-JAGs.
        "identity_chaining_requested_token_types_supported": [ID_JAG_URN],
        # "none" is a public client (PKCE and its redirect URI are what bind it).
        "token_endpoint_auth_methods_supported": ["none", *CLIENT_AUTH_METHODS],
        "revocation_endpoint": base + REVOCATION_PATH,
        "revocation_endpoint_auth_methods_supported": ["none", *CLIENT_AUTH_METHODS],
        "introspection_endpoint": base + INTROSPECTION_PATH,
        "introspection_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }


def openid_configuration(settings: IssuerSettings, issue_token_endpoint: str) -> dict[str, Any]:
    return {
        **authorization_server_metadata(settings),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "claims_supported": list(CLAIMS),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        # The inner issue-token API, and the token profiles it can hand out.
        "issue_token_endpoint": issue_token_endpoint,
        "token_profiles_supported": ["id_token", "access_token"],
    }
