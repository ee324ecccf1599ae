"""RFC 8693 token exchange: our ID or access token in, an audience-bound access token out; and refusals."""

from __future__ import annotations

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from oauth_support import (
    ACCESS_TOKEN_URN,
    ID_TOKEN_URN,
    FakeClock,
    OAuthClient,
    RunningIssuer,
    assert_oauth_error,
    claims_of,
    register,
)

from fake_enterprise import AdminClient

SIGN_IN_RESOURCE = "http://127.0.0.1:9/host"
TARGET = "http://127.0.0.1:9/mcp"


def _signed_in(http: httpx.Client, issuer: RunningIssuer, hint: str) -> tuple[OAuthClient, dict[str, str]]:
    client = register(http, issuer.url, token_endpoint_auth_method="client_secret_basic")
    return client, client.sign_in(hint, SIGN_IN_RESOURCE, scope="openid profile email")


def test_id_token_is_exchanged_for_an_access_token_bound_to_the_resource(
    module_issuer: RunningIssuer, http: httpx.Client, tenant: str, alice_subject: str, alice: str
) -> None:
    client, tokens = _signed_in(http, module_issuer, alice)
    response = client.exchange(tokens["id_token"], ID_TOKEN_URN, resource=TARGET)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer = response.json()
    assert answer["issued_token_type"] == ACCESS_TOKEN_URN and answer["token_type"] == "Bearer"
    assert "refresh_token" not in answer
    claims = claims_of(answer["access_token"])
    assert jwt.get_unverified_header(answer["access_token"])["typ"] == "at+jwt"
    assert claims["aud"] == TARGET and claims["sub"] == alice_subject and claims["tenant_id"] == tenant
    assert claims["preferred_username"] == "alice"
    assert claims["client_id"] == client.client_id


def test_access_token_is_exchanged_with_audience_and_narrower_scope(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client, tokens = _signed_in(http, module_issuer, alice)
    answer = client.exchange(
        tokens["access_token"], ACCESS_TOKEN_URN, audience="billing", scope="openid"
    ).json()
    claims = claims_of(answer["access_token"])
    assert claims["aud"] == "billing" and claims["scope"] == "openid"
    wider = client.exchange(tokens["access_token"], ACCESS_TOKEN_URN, resource=TARGET, scope="openid admin")
    assert_oauth_error(wider, "invalid_scope")


def test_subject_token_from_another_issuer_is_invalid_grant(
    module_issuer: RunningIssuer, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, tokens = _signed_in(http, module_issuer, alice)
    claims = claims_of(tokens["id_token"])
    kid = jwt.get_unverified_header(tokens["id_token"])["kid"]
    mallory = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, mallory, algorithm="RS256", headers={"kid": kid})
    assert_oauth_error(client.exchange(forged, ID_TOKEN_URN, resource=TARGET), "invalid_grant")
    with module_issuer.admin() as admin:
        elsewhere = admin.mint({**claims, "iss": "http://127.0.0.1:1/other-issuer"})
    body = assert_oauth_error(client.exchange(elsewhere, ID_TOKEN_URN, resource=TARGET), "invalid_grant")
    assert "another issuer" in body["error_description"]


def test_expired_subject_token_is_invalid_grant(start_issuer: object) -> None:
    clock = FakeClock()
    issuer = start_issuer(clock=clock)  # type: ignore[operator]
    with issuer.admin() as admin, httpx.Client() as http:
        admin.create_user("acme", "alice")
        client, tokens = _signed_in(http, issuer, "acme/alice")
        clock.now += issuer.settings.token_ttl + 1
        body = assert_oauth_error(
            client.exchange(tokens["id_token"], ID_TOKEN_URN, resource=TARGET), "invalid_grant"
        )
        assert "expired" in body["error_description"]


def test_subject_token_of_another_client_is_invalid_grant(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    _, tokens = _signed_in(http, module_issuer, alice)
    other = register(http, module_issuer.url, token_endpoint_auth_method="client_secret_post")
    assert_oauth_error(other.exchange(tokens["id_token"], ID_TOKEN_URN, resource=TARGET), "invalid_grant")
    assert_oauth_error(
        other.exchange(tokens["access_token"], ACCESS_TOKEN_URN, resource=TARGET), "invalid_grant"
    )


def test_issue_token_api_tokens_and_mismatched_types_are_refused(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, tokens = _signed_in(http, module_issuer, alice)
    inner = admin.issue_token(tenant, "alice", TARGET, app_id=client.client_id)["token"]
    assert_oauth_error(client.exchange(inner, ID_TOKEN_URN, resource=TARGET), "invalid_grant")
    assert_oauth_error(
        client.exchange(tokens["id_token"], ACCESS_TOKEN_URN, resource=TARGET), "invalid_grant"
    )


def test_policy_applies_to_token_exchange(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, tokens = _signed_in(http, module_issuer, alice)
    admin.set_policy(tenant, allowed_audiences=[SIGN_IN_RESOURCE])
    assert_oauth_error(client.exchange(tokens["id_token"], ID_TOKEN_URN, resource=TARGET), "invalid_target")
    admin.set_policy(tenant, deny=True)
    assert_oauth_error(
        client.exchange(tokens["id_token"], ID_TOKEN_URN, resource=SIGN_IN_RESOURCE), "invalid_grant"
    )


def test_malformed_exchange_requests(module_issuer: RunningIssuer, http: httpx.Client, alice: str) -> None:
    client, tokens = _signed_in(http, module_issuer, alice)
    id_token = tokens["id_token"]
    assert_oauth_error(client.exchange(id_token, ID_TOKEN_URN), "invalid_request")  # no resource or audience
    assert_oauth_error(client.exchange(id_token, "urn:x", resource=TARGET), "invalid_request")
    assert_oauth_error(
        client.exchange(id_token, ID_TOKEN_URN, resource=TARGET, requested_token_type="urn:x"),
        "invalid_request",
    )
    assert_oauth_error(client.exchange(id_token, ID_TOKEN_URN, resource="not a uri"), "invalid_target")
    assert_oauth_error(client.exchange("not.a.jwt", ID_TOKEN_URN, resource=TARGET), "invalid_grant")


def test_client_without_the_exchange_grant_is_unauthorized(
    module_issuer: RunningIssuer, http: httpx.Client, alice: str
) -> None:
    client = register(
        http,
        module_issuer.url,
        token_endpoint_auth_method="client_secret_post",
        grant_types=["authorization_code"],
    )
    tokens = client.sign_in(alice, SIGN_IN_RESOURCE, scope="openid")
    assert "refresh_token" not in tokens  # not registered for refresh either
    assert_oauth_error(
        client.exchange(tokens["id_token"], ID_TOKEN_URN, resource=TARGET), "unauthorized_client"
    )
