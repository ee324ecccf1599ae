"""The issuer's RFC 8414 and OIDC discovery documents: valid to authlib and to the mcp SDK, and true."""

from __future__ import annotations

import httpx
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from mcp.shared.auth import OAuthMetadata
from oauth_support import TOKEN_EXCHANGE, RunningIssuer


def test_rfc8414_metadata_validates_and_names_every_endpoint(
    module_issuer: RunningIssuer, http: httpx.Client
) -> None:
    response = http.get(f"{module_issuer.url}/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    document = response.json()
    AuthorizationServerMetadata(document).validate()
    parsed = OAuthMetadata.model_validate(document)
    assert str(parsed.issuer) == module_issuer.url  # compared as strings by clients (RFC 8414 §3.3)
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["grant_types_supported"]) == {"authorization_code", "refresh_token", TOKEN_EXCHANGE}
    assert document["authorization_response_iss_parameter_supported"] is True
    assert "client_id_metadata_document_supported" not in document  # not built, so not claimed
    for name in ("authorization", "token", "registration", "revocation", "introspection"):
        assert document[f"{name}_endpoint"].startswith(module_issuer.url + "/")


def test_oidc_discovery_validates_and_only_claims_the_code_flow(
    module_issuer: RunningIssuer, http: httpx.Client
) -> None:
    document = http.get(f"{module_issuer.url}/.well-known/openid-configuration").json()
    OpenIDProviderMetadata(document).validate()
    OAuthMetadata.model_validate(document)
    assert document["response_types_supported"] == ["code"]
    assert document["issue_token_endpoint"] == f"{module_issuer.url}/inner/api/mcp/issue-token"
    oauth = http.get(f"{module_issuer.url}/.well-known/oauth-authorization-server").json()
    assert {name: document[name] for name in oauth} == oauth


def test_advertised_endpoints_answer(module_issuer: RunningIssuer, http: httpx.Client) -> None:
    """No endpoint in the metadata is a 404 or a 405 for the method clients use."""
    document = http.get(f"{module_issuer.url}/.well-known/oauth-authorization-server").json()
    assert http.get(document["authorization_endpoint"]).status_code == 400
    for name in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        response = http.post(document[name], data={})
        assert response.status_code in (400, 401), (name, response.status_code)
    assert http.post(document["registration_endpoint"], json={}).status_code == 400
    assert http.get(document["jwks_uri"]).status_code == 200
