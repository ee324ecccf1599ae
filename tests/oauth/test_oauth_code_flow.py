"""Authorization code + PKCE at the HTTP level: what is issued, and every refusal with its RFC code."""

from __future__ import annotations

import httpx
import jwt
import pytest
from oauth_support import (
    REDIRECT_URI,
    FakeClock,
    Pkce,
    RunningIssuer,
    assert_oauth_error,
    claims_of,
    query_of,
    register,
)

from fake_enterprise import AdminClient

RESOURCE = "http://127.0.0.1:9/mcp"


def test_tokens_are_rfc9068_access_token_and_oidc_id_token(
    module_issuer: RunningIssuer, http: httpx.Client, tenant: str, alice_subject: str, alice: str
) -> None:
    client = register(http, module_issuer.url)
    pkce = Pkce.new()
    answer = client.code(
        pkce, alice, resource=RESOURCE, scope="openid profile email", nonce="n-0S6", state="s-1"
    )
    assert answer["state"] == "s-1"
    assert answer["iss"] == module_issuer.url  # RFC 9207
    response = client.exchange_code(answer["code"], pkce, resource=RESOURCE)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()

    access = claims_of(tokens["access_token"])
    assert jwt.get_unverified_header(tokens["access_token"])["typ"] == "at+jwt"
    assert access["aud"] == RESOURCE and access["iss"] == module_issuer.url
    assert access["client_id"] == client.client_id and access["scope"] == "openid profile email"
    assert access["sub"] == alice_subject and access["tenant_id"] == tenant
    assert access["preferred_username"] == "alice"
    assert {"exp", "iat", "jti", "auth_time"} <= set(access)

    id_token = claims_of(tokens["id_token"])
    assert id_token["aud"] == client.client_id and id_token["nonce"] == "n-0S6"
    assert id_token["auth_time"] == access["auth_time"] and id_token["sub"] == alice_subject


def test_loopback_redirect_may_change_port_but_nothing_else(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client = register(http, module_issuer.url)
    other_port = REDIRECT_URI.replace(":53682", ":40001")
    answer = client.code(Pkce.new(), alice, redirect_uri=other_port, resource=RESOURCE)
    assert answer["code"]
    for wrong in (
        REDIRECT_URI + "x",
        REDIRECT_URI.replace("127.0.0.1", "127.0.0.2"),
        "https://evil.test/callback",
    ):
        response = client.authorize(Pkce.new(), login_hint=alice, redirect_uri=wrong)
        assert response.status_code == 400 and "location" not in response.headers, wrong
        assert "invalid_request" in response.text


def test_wrong_pkce_verifier_is_invalid_grant(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client = register(http, module_issuer.url)
    answer = client.code(Pkce.new(), alice, resource=RESOURCE)
    assert_oauth_error(client.exchange_code(answer["code"], Pkce.new(), resource=RESOURCE), "invalid_grant")


def test_plain_pkce_and_missing_challenge_are_refused_at_authorize(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client = register(http, module_issuer.url)
    plain = client.authorize(Pkce.new(), login_hint=alice, code_challenge_method="plain", state="s")
    assert plain.status_code == 302
    assert query_of(plain.headers["location"])["error"] == "invalid_request"
    assert query_of(plain.headers["location"])["iss"] == module_issuer.url
    missing = http.get(
        f"{module_issuer.url}/authorize",
        params={"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT_URI},
    )
    assert query_of(missing.headers["location"])["error"] == "invalid_request"


def test_reused_code_is_refused_and_revokes_what_it_gave(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client = register(http, module_issuer.url)
    pkce = Pkce.new()
    answer = client.code(pkce, alice, resource=RESOURCE)
    first = client.exchange_code(answer["code"], pkce, resource=RESOURCE)
    assert first.status_code == 200
    assert_oauth_error(client.exchange_code(answer["code"], pkce, resource=RESOURCE), "invalid_grant")
    assert_oauth_error(client.refresh(first.json()["refresh_token"]), "invalid_grant")


def test_wrong_redirect_uri_at_the_token_endpoint_is_invalid_grant(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client = register(http, module_issuer.url)
    pkce = Pkce.new()
    answer = client.code(pkce, alice, resource=RESOURCE)
    response = client.exchange_code(
        answer["code"], pkce, redirect_uri=REDIRECT_URI.replace(":53682", ":40001")
    )
    assert_oauth_error(response, "invalid_grant")


def test_unsupported_grant_type(module_issuer: RunningIssuer, http: httpx.Client) -> None:
    client = register(http, module_issuer.url)
    assert_oauth_error(
        client.token(grant_type="password", username="a", password="b"), "unsupported_grant_type"
    )
    assert_oauth_error(client.token(), "invalid_request")


def test_refresh_rotates_and_reuse_kills_the_family(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client = register(http, module_issuer.url)
    first = client.sign_in(alice, RESOURCE)
    rotated = client.refresh(first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert claims_of(second["access_token"])["aud"] == RESOURCE

    assert_oauth_error(client.refresh(first["refresh_token"]), "invalid_grant")
    assert_oauth_error(client.refresh(second["refresh_token"]), "invalid_grant")


def test_refresh_token_of_another_client_is_invalid_grant(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    owner, thief = register(http, module_issuer.url), register(http, module_issuer.url)
    tokens = owner.sign_in(alice, RESOURCE)
    assert_oauth_error(thief.refresh(tokens["refresh_token"]), "invalid_grant")
    assert owner.refresh(tokens["refresh_token"]).status_code == 200  # the thief's try did not spend it


def test_tenant_denied_by_policy(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client = register(http, module_issuer.url)
    tokens = client.sign_in(alice, RESOURCE)
    admin.set_policy(tenant, deny=True)
    refused = client.authorize(Pkce.new(), login_hint=alice, resource=RESOURCE, state="s")
    assert refused.status_code == 302
    answer = query_of(refused.headers["location"])
    assert (
        answer["error"] == "access_denied" and answer["state"] == "s" and answer["iss"] == module_issuer.url
    )
    assert_oauth_error(client.refresh(tokens["refresh_token"]), "invalid_grant")


def test_audience_outside_the_tenant_policy(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    admin.set_policy(tenant, allowed_audiences=[RESOURCE])
    client = register(http, module_issuer.url)
    tokens = client.sign_in(alice, RESOURCE)
    refused = client.authorize(Pkce.new(), login_hint=alice, resource="http://127.0.0.1:9/other")
    assert query_of(refused.headers["location"])["error"] == "access_denied"
    admin.set_policy(tenant, allowed_audiences=["http://127.0.0.1:9/other"])
    assert_oauth_error(client.refresh(tokens["refresh_token"]), "invalid_target")


def test_revoked_sso_grant_ends_refresh(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client = register(http, module_issuer.url)
    tokens = client.sign_in(alice, RESOURCE)
    admin.revoke(tenant, "alice")
    assert_oauth_error(client.refresh(tokens["refresh_token"]), "invalid_grant")


def test_without_resource_the_token_is_for_the_issuer_itself(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client = register(http, module_issuer.url)
    pkce = Pkce.new()
    answer = client.code(pkce, alice)
    tokens = client.exchange_code(answer["code"], pkce).json()
    assert claims_of(tokens["access_token"])["aud"] == module_issuer.url


def test_injected_faults_apply_to_the_token_endpoint(start_issuer: object) -> None:
    issuer = start_issuer()  # type: ignore[operator]
    with issuer.admin() as admin, httpx.Client() as http:
        admin.create_user("acme", "alice")
        client = register(http, issuer.url)
        tokens = client.sign_in("acme/alice", RESOURCE)
        admin.set_faults(issue_token_status=503)
        assert_oauth_error(client.refresh(tokens["refresh_token"]), "temporarily_unavailable", 503)
        refused = client.authorize(Pkce.new(), login_hint="acme/alice", resource=RESOURCE)
        assert query_of(refused.headers["location"])["error"] == "temporarily_unavailable"
        admin.clear_faults()
        assert client.refresh(tokens["refresh_token"]).status_code == 200


def test_codes_expire_after_sixty_seconds(start_issuer: object) -> None:
    clock = FakeClock()
    issuer = start_issuer(clock=clock)  # type: ignore[operator]
    with issuer.admin() as admin, httpx.Client() as http:
        admin.create_user("acme", "alice")
        client = register(http, issuer.url)
        pkce = Pkce.new()
        answer = client.code(pkce, "acme/alice", resource=RESOURCE)
        clock.now += 61
        assert_oauth_error(client.exchange_code(answer["code"], pkce, resource=RESOURCE), "invalid_grant")


@pytest.mark.parametrize("hint", ["acme/nobody", "not-a-hint"])
def test_auto_login_without_a_known_hinted_user_shows_the_page(
    module_issuer: RunningIssuer, http: httpx.Client, hint: str
) -> None:
    client = register(http, module_issuer.url)
    response = client.authorize(Pkce.new(), login_hint=hint)
    assert response.status_code == 302
    assert response.headers["location"].startswith(module_issuer.url + "/oauth/sign-in?request=")
