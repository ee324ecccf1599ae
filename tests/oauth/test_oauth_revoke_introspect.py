"""Revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

import httpx
from oauth_support import OAuthClient, RunningIssuer, assert_oauth_error, register

RESOURCE = "http://127.0.0.1:9/mcp"


def _resource_server(http: httpx.Client, issuer: RunningIssuer) -> OAuthClient:
    return register(http, issuer.url, token_endpoint_auth_method="client_secret_basic")


def test_introspection_reports_a_live_access_token_then_its_revocation(
    module_issuer: RunningIssuer, http: httpx.Client, tenant: str, alice_subject: str, alice: str
) -> None:
    client = register(http, module_issuer.url)
    tokens = client.sign_in(alice, RESOURCE)
    server = _resource_server(http, module_issuer)

    answer = server.post("/introspect", token=tokens["access_token"])
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    info = answer.json()
    assert info["active"] is True and info["aud"] == RESOURCE and info["tenant_id"] == tenant
    assert info["client_id"] == client.client_id and info["username"] == "alice"
    assert info["sub"] == alice_subject

    assert client.post("/revoke", token=tokens["access_token"]).status_code == 200
    assert server.post("/introspect", token=tokens["access_token"]).json() == {"active": False}
    # Revoking the access token ended its family: the refresh token is gone too.
    assert_oauth_error(client.refresh(tokens["refresh_token"]), "invalid_grant")


def test_revoking_a_refresh_token_ends_the_family(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client = register(http, module_issuer.url, token_endpoint_auth_method="client_secret_post")
    tokens = client.sign_in(alice, RESOURCE)
    assert (
        client.post("/revoke", token=tokens["refresh_token"], token_type_hint="refresh_token").status_code
        == 200
    )
    assert_oauth_error(client.refresh(tokens["refresh_token"]), "invalid_grant")
    assert client.post("/introspect", token=tokens["access_token"]).json() == {"active": False}


def test_revocation_of_unknown_or_foreign_tokens_is_a_quiet_200(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    owner, other = register(http, module_issuer.url), register(http, module_issuer.url)
    tokens = owner.sign_in(alice, RESOURCE)
    assert other.post("/revoke", token="no-such-token").status_code == 200
    assert other.post("/revoke", token=tokens["refresh_token"]).status_code == 200
    assert owner.refresh(tokens["refresh_token"]).status_code == 200  # another client cannot revoke it


def test_introspection_and_revocation_refuse_unauthenticated_callers(
    module_issuer: RunningIssuer, http: httpx.Client
) -> None:
    public = register(http, module_issuer.url)
    assert_oauth_error(public.post("/introspect", token="x"), "invalid_client", 401)
    stranger = OAuthClient(http, module_issuer.url, "no-such-client")
    assert_oauth_error(stranger.post("/revoke", token="x"), "invalid_client", 401)
    confidential = _resource_server(http, module_issuer)
    wrong = OAuthClient(
        http, module_issuer.url, confidential.client_id, "wrong", auth_method="client_secret_basic"
    )
    assert_oauth_error(wrong.post("/introspect", token="x"), "invalid_client", 401)
    assert_oauth_error(confidential.post("/introspect"), "invalid_request")
    assert confidential.post("/introspect", token="garbage").json() == {"active": False}
