"""Clients: dynamic registration (RFC 7591), pre-registration over the admin API, secrets sealed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from oauth_support import REDIRECT_URI, SECRET, OAuthClient, Pkce, RunningIssuer, assert_oauth_error, register

from fake_enterprise import AdminAPIError, AdminClient


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_registers_and_authenticates_with_its_method(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str, method: str
) -> None:
    client = register(http, module_issuer.url, token_endpoint_auth_method=method)
    assert client.client_secret and client.auth_method == method
    tokens = client.sign_in(alice, "http://127.0.0.1:9/mcp")
    assert tokens["token_type"] == "Bearer"

    wrong = OAuthClient(http, module_issuer.url, client.client_id, "not-the-secret", auth_method=method)
    assert_oauth_error(wrong.refresh(tokens["refresh_token"]), "invalid_client", 401)


def test_unknown_client_is_refused_at_the_token_endpoint(
    module_issuer: RunningIssuer, http: httpx.Client
) -> None:
    stranger = OAuthClient(http, module_issuer.url, "no-such-client")
    response = stranger.token(grant_type="authorization_code", code="x", code_verifier="y" * 43)
    assert_oauth_error(response, "invalid_client", 401)


def test_unknown_client_gets_an_error_page_not_a_redirect(
    module_issuer: RunningIssuer, http: httpx.Client
) -> None:
    stranger = OAuthClient(http, module_issuer.url, "no-such-client")
    response = stranger.authorize(Pkce.new())
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "invalid_request" in response.text and "location" not in response.headers


def test_registration_refuses_bad_metadata(module_issuer: RunningIssuer, http: httpx.Client) -> None:
    response = http.post(f"{module_issuer.url}/register", json={"redirect_uris": []})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


def test_admin_preregisters_lists_and_deletes_clients(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, alice: str
) -> None:
    created = admin.create_client(client_name="CI host", redirect_uris=[REDIRECT_URI], client_id="ci-host-1")
    assert created["client_id"] == "ci-host-1" and created["client_secret"]
    assert created["token_endpoint_auth_method"] == "client_secret_basic"
    listed = {client["client_id"]: client for client in admin.list_clients()}
    assert listed["ci-host-1"]["source"] == "admin"
    assert "client_secret" not in listed["ci-host-1"]
    with pytest.raises(AdminAPIError) as exists:
        admin.create_client(redirect_uris=[REDIRECT_URI], client_id="ci-host-1")
    assert exists.value.status == 409

    client = OAuthClient(
        http, module_issuer.url, "ci-host-1", created["client_secret"], auth_method="client_secret_basic"
    )
    client.sign_in(alice, "http://127.0.0.1:9/mcp")

    admin.delete_client("ci-host-1")
    assert "ci-host-1" not in {client["client_id"] for client in admin.list_clients()}
    assert_oauth_error(client.refresh("anything"), "invalid_client", 401)
    with pytest.raises(AdminAPIError) as gone:
        admin.delete_client("ci-host-1")
    assert gone.value.status == 404


def test_admin_client_routes_need_the_admin_secret(module_issuer: RunningIssuer, http: httpx.Client) -> None:
    for method, path in (
        ("POST", "/admin/clients"),
        ("GET", "/admin/clients"),
        ("DELETE", "/admin/clients/x"),
    ):
        body = {} if method == "POST" else None
        response = http.request(method, f"{module_issuer.url}{path}", json=body)
        assert response.status_code == 401, (method, path)
        # The inner secret every host holds opens nothing here, in either header.
        for headers in ({"Enterprise-Api-Secret-Key": SECRET}, {"Authorization": f"Bearer {SECRET}"}):
            response = http.request(method, f"{module_issuer.url}{path}", json=body, headers=headers)
            assert response.status_code == 401, (method, path, headers)


def test_client_secrets_are_sealed_at_rest(start_issuer: object, tmp_path: object) -> None:
    db_path = f"{tmp_path}/issuer.db"
    issuer = start_issuer(db_path=db_path)  # type: ignore[operator]
    with issuer.admin() as admin:
        secret = admin.create_client(redirect_uris=[REDIRECT_URI], client_id="sealed")["client_secret"]
    with httpx.Client() as http:
        dynamic = register(http, issuer.url, token_endpoint_auth_method="client_secret_post")
    raw = b"".join(
        row[0]
        for row in sqlite3.connect(db_path).execute("SELECT sealed_secret FROM oauth_clients").fetchall()
    )
    assert secret.encode() not in raw and dynamic.client_secret.encode() not in raw  # type: ignore[union-attr]
    for path in Path(str(tmp_path)).glob("issuer.db*"):  # the database, its WAL and the key file
        assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("scope", [None, ""])
def test_client_registered_without_scopes_may_ask_for_any_supported_scope(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str, scope: str | None
) -> None:
    """The MCP Inspector registers with `"scope": ""`, then asks for the scopes in our metadata."""
    metadata = {} if scope is None else {"scope": scope}
    client = register(http, module_issuer.url, **metadata)
    tokens = client.sign_in(alice, "http://127.0.0.1:9/mcp", scope="openid profile email offline_access")
    assert tokens["scope"] == "openid profile email offline_access"
