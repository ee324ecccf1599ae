"""The IdP issues ID-JAGs (RFC 8693, requested_token_type id-jag) under the tenant's allow-list, and
refuses every request it must with its RFC error."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
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

from fake_enterprise import AdminAPIError, AdminClient

ID_JAG_URN = "urn:ietf:params:oauth:token-type:id-jag"
SIGN_IN_RESOURCE = "http://127.0.0.1:9/host"
AS = "http://127.0.0.1:9/notes-as"  # an MCP authorization server's issuer
MCP = "http://127.0.0.1:9/notes/mcp"  # the MCP server it governs
OTHER_AS = "http://127.0.0.1:9/billing-as"
OTHER_MCP = "http://127.0.0.1:9/billing/mcp"


def _signed_in(
    http: httpx.Client, issuer: RunningIssuer, hint: str, **metadata: Any
) -> tuple[OAuthClient, str]:
    """A confidential client, and the ID token it got by signing `hint` in (code + PKCE)."""
    client = register(http, issuer.url, **{"token_endpoint_auth_method": "client_secret_basic", **metadata})
    return client, client.sign_in(hint, SIGN_IN_RESOURCE, scope="openid profile email")["id_token"]


def _ask(client: OAuthClient, id_token: str, **params: str) -> httpx.Response:
    form = {"requested_token_type": ID_JAG_URN, "audience": AS, "resource": MCP, **params}
    return client.exchange(id_token, ID_TOKEN_URN, **form)


def _allow(admin: AdminClient, tenant: str, client: OAuthClient, **entry: Any) -> None:
    admin.allow_id_jag(tenant, client.client_id, AS, [MCP], **entry)


def test_an_id_token_is_exchanged_for_an_id_jag(
    module_issuer: RunningIssuer,
    admin: AdminClient,
    http: httpx.Client,
    tenant: str,
    alice: str,
    alice_subject: str,
) -> None:
    client, id_token = _signed_in(http, module_issuer, alice)
    _allow(admin, tenant, client)

    response = _ask(client, id_token, scope="notes.read notes.write")

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer = response.json()
    assert answer["issued_token_type"] == ID_JAG_URN
    assert answer["token_type"] == "N_A"
    assert answer["expires_in"] == 300
    assert answer["scope"] == "notes.read notes.write"
    assert "refresh_token" not in answer
    grant = answer["access_token"]
    assert jwt.get_unverified_header(grant)["typ"] == "oauth-id-jag+jwt"
    key = jwt.PyJWKClient(f"{module_issuer.url}/.well-known/jwks.json").get_signing_key_from_jwt(grant)
    claims = jwt.decode(grant, key.key, algorithms=["RS256"], audience=AS, issuer=module_issuer.url)
    assert claims["sub"] == alice_subject
    assert claims["resource"] == MCP
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "notes.read notes.write"
    assert (claims["tenant_id"], claims["tenant"]) == (tenant, tenant)
    assert claims["preferred_username"] == "alice"
    assert claims["email"] == f"alice@{tenant}.test"
    assert claims["exp"] - claims["iat"] == 300
    assert isinstance(claims["auth_time"], int)
    again = claims_of(_ask(client, id_token, scope="notes.read notes.write").json()["access_token"])
    assert again["jti"] != claims["jti"]


def test_metadata_advertises_id_jag_issuance(module_issuer: RunningIssuer, http: httpx.Client) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        document = http.get(module_issuer.url + path).json()
        assert document["identity_chaining_requested_token_types_supported"] == [ID_JAG_URN]


def test_the_lifetime_is_capped_at_five_minutes(start_issuer: Any) -> None:
    issuer = start_issuer(token_ttl=3600)
    with issuer.admin() as admin, httpx.Client(timeout=10) as http:
        admin.create_user("acme", "alice")
        client, id_token = _signed_in(http, issuer, "acme/alice")
        _allow(admin, "acme", client)
        answer = _ask(client, id_token).json()
    claims = claims_of(answer["access_token"])
    assert answer["expires_in"] == claims["exp"] - claims["iat"] == 300
    assert "scope" not in claims and "scope" not in answer  # none asked, none configured


def test_a_tenant_without_a_policy_gets_no_id_jag(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, id_token = _signed_in(http, module_issuer, alice)
    assert admin.id_jag_policy(tenant) == {"tenant_id": tenant, "configured": False, "clients": {}}

    body = assert_oauth_error(_ask(client, id_token), "invalid_target")

    assert "has no ID-JAG policy" in body["error_description"]


def test_audiences_resources_and_clients_outside_the_allow_list_are_invalid_target(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, id_token = _signed_in(http, module_issuer, alice)
    stranger, strangers_token = _signed_in(http, module_issuer, alice)
    _allow(admin, tenant, client)
    admin.allow_id_jag(tenant, client.client_id, OTHER_AS, [OTHER_MCP])

    not_listed = assert_oauth_error(
        _ask(client, id_token, audience="http://127.0.0.1:9/evil-as"), "invalid_target"
    )
    other_servers = assert_oauth_error(_ask(client, id_token, resource=OTHER_MCP), "invalid_target")
    not_allowed = assert_oauth_error(_ask(stranger, strangers_token), "invalid_target")

    assert "audience 'http://127.0.0.1:9/evil-as' is not" in not_listed["error_description"]
    assert f"resource {OTHER_MCP!r} is not allowed" in other_servers["error_description"]
    assert f"client {stranger.client_id!r} may not get ID-JAGs" in not_allowed["error_description"]
    assert _ask(client, id_token, audience=OTHER_AS, resource=OTHER_MCP).status_code == 200


def test_another_clients_id_token_is_invalid_grant(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    _, id_token = _signed_in(http, module_issuer, alice)
    thief = register(http, module_issuer.url, token_endpoint_auth_method="client_secret_post")
    _allow(admin, tenant, thief)

    body = assert_oauth_error(_ask(thief, id_token), "invalid_grant")

    assert "ID token for another client" in body["error_description"]


def test_forged_and_foreign_id_tokens_are_invalid_grant(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, id_token = _signed_in(http, module_issuer, alice)
    _allow(admin, tenant, client)
    claims = claims_of(id_token)
    kid = jwt.get_unverified_header(id_token)["kid"]
    mallory = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, mallory, algorithm="RS256", headers={"kid": kid})
    foreign = admin.mint({**claims, "iss": "http://127.0.0.1:1/other-idp"})

    assert_oauth_error(_ask(client, forged), "invalid_grant")
    body = assert_oauth_error(_ask(client, foreign), "invalid_grant")
    assert "another issuer" in body["error_description"]


def test_an_expired_id_token_is_invalid_grant(start_issuer: Any) -> None:
    clock = FakeClock()
    issuer = start_issuer(clock=clock)
    with issuer.admin() as admin, httpx.Client(timeout=10) as http:
        admin.create_user("acme", "alice")
        client, id_token = _signed_in(http, issuer, "acme/alice")
        _allow(admin, "acme", client)
        clock.now += issuer.settings.token_ttl + 1
        body = assert_oauth_error(_ask(client, id_token), "invalid_grant")
    assert "expired" in body["error_description"]


def test_tenant_policy_and_the_sso_grant_still_apply(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, id_token = _signed_in(http, module_issuer, alice)
    _allow(admin, tenant, client)

    admin.set_policy(tenant, allowed_audiences=[OTHER_MCP])
    assert_oauth_error(_ask(client, id_token), "invalid_target")
    admin.set_policy(tenant, deny=True)
    denied = assert_oauth_error(_ask(client, id_token), "invalid_grant")
    admin.set_policy(tenant)
    admin.revoke(tenant, "alice")
    revoked = assert_oauth_error(_ask(client, id_token), "invalid_grant")

    assert "not allowed to obtain tokens" in denied["error_description"]
    assert "revoked" in revoked["error_description"]


def test_a_public_client_gets_no_id_jag(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, id_token = _signed_in(http, module_issuer, alice, token_endpoint_auth_method="none")
    _allow(admin, tenant, client)

    body = assert_oauth_error(_ask(client, id_token), "unauthorized_client")

    assert "confidential" in body["error_description"]


def test_malformed_id_jag_requests_are_invalid_request(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client = register(http, module_issuer.url, token_endpoint_auth_method="client_secret_basic")
    answer = client.sign_in(alice, SIGN_IN_RESOURCE, scope="openid profile email")
    _allow(admin, tenant, client)
    id_token, access_token = answer["id_token"], answer["access_token"]
    form = {"requested_token_type": ID_JAG_URN}

    assert_oauth_error(client.exchange(id_token, ID_TOKEN_URN, **form, resource=MCP), "invalid_request")
    assert_oauth_error(client.exchange(id_token, ID_TOKEN_URN, **form, audience=AS), "invalid_request")
    assert_oauth_error(_ask(client, id_token, audience="x" * 3000), "invalid_target")
    body = assert_oauth_error(
        client.exchange(access_token, ACCESS_TOKEN_URN, **form, audience=AS, resource=MCP), "invalid_request"
    )
    assert "ID token" in body["error_description"]


def test_the_idp_never_takes_its_own_id_jag_as_a_subject_token(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, id_token = _signed_in(http, module_issuer, alice)
    _allow(admin, tenant, client)
    id_jag = _ask(client, id_token).json()["access_token"]

    assert_oauth_error(_ask(client, id_jag), "invalid_grant")
    assert_oauth_error(client.exchange(id_jag, ID_TOKEN_URN, resource=MCP), "invalid_grant")


def test_scopes_are_narrowed_to_the_allowed_ones(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, id_token = _signed_in(http, module_issuer, alice)
    _allow(admin, tenant, client, scopes=["notes.read"])

    narrowed = _ask(client, id_token, scope="notes.read notes.admin").json()
    default = _ask(client, id_token).json()
    beyond = assert_oauth_error(_ask(client, id_token, scope="notes.admin"), "invalid_scope")

    assert narrowed["scope"] == claims_of(narrowed["access_token"])["scope"] == "notes.read"
    assert default["scope"] == claims_of(default["access_token"])["scope"] == "notes.read"
    assert "none of the requested scopes" in beyond["error_description"]


def test_the_client_id_at_the_authorization_server_can_differ(
    module_issuer: RunningIssuer, admin: AdminClient, http: httpx.Client, tenant: str, alice: str
) -> None:
    client, id_token = _signed_in(http, module_issuer, alice)
    _allow(admin, tenant, client, audience_client_id="notes-host-app")

    claims = claims_of(_ask(client, id_token).json()["access_token"])

    assert claims["client_id"] == "notes-host-app"


# --- the admin API ---------------------------------------------------------------------------------


def test_the_policy_round_trips_and_allow_id_jag_keeps_other_entries(admin: AdminClient, tenant: str) -> None:
    admin.allow_id_jag(tenant, "host-app", AS, [MCP], scopes=["notes.read"])
    admin.allow_id_jag(tenant, "host-app", OTHER_AS, [OTHER_MCP], audience_client_id="host-at-billing")
    admin.allow_id_jag(tenant, "other-app", AS, [MCP])

    policy = admin.id_jag_policy(tenant)

    assert policy == {
        "tenant_id": tenant,
        "configured": True,
        "clients": {
            "host-app": {
                "audiences": {
                    AS: {"resources": [MCP], "scopes": ["notes.read"]},
                    OTHER_AS: {"resources": [OTHER_MCP], "client_id": "host-at-billing"},
                }
            },
            "other-app": {"audiences": {AS: {"resources": [MCP]}}},
        },
    }
    assert admin.set_id_jag_policy(tenant, {})["clients"] == {}
    assert admin.id_jag_policy(tenant)["configured"] is True


@pytest.mark.parametrize(
    ("clients", "message"),
    [
        ([], "clients must be a JSON object"),
        ({"host-app": []}, "must be a JSON object"),
        ({"host-app": {"servers": {}}}, "unknown field(s): servers"),
        ({"host-app": {"audiences": {"notes-as": {"resources": []}}}}, "audience must be an absolute"),
        ({"host-app": {"audiences": {AS: {}}}}, "missing field 'resources'"),
        ({"host-app": {"audiences": {AS: {"resources": ["ftp://x/"]}}}}, "absolute http(s) URL"),
        ({"host-app": {"audiences": {AS: {"resources": [MCP], "scopes": ["a b"]}}}}, "scope token"),
        ({"host-app": {"audiences": {AS: {"resources": [MCP], "client_id": ""}}}}, "client_id must be 1"),
        ({"a/b": {"audiences": {}}}, "client id must not contain '/'"),
    ],
)
def test_a_malformed_policy_is_400(admin: AdminClient, tenant: str, clients: Any, message: str) -> None:
    with pytest.raises(AdminAPIError) as refused:
        admin.set_id_jag_policy(tenant, clients)

    assert (refused.value.status, refused.value.error) == (400, "invalid_request")
    assert message in refused.value.message
    assert admin.id_jag_policy(tenant)["configured"] is False


def test_the_policy_api_takes_only_the_admin_secret(module_issuer: RunningIssuer, tenant: str) -> None:
    url = f"{module_issuer.url}/admin/tenants/{tenant}/id-jag-policy"
    inner = {"Enterprise-Api-Secret-Key": module_issuer.settings.secret}
    with httpx.Client(timeout=10) as http:
        assert http.put(url, json={"clients": {}}, headers=inner).status_code == 401
        assert (
            http.get(url, headers={"Authorization": f"Bearer {module_issuer.settings.secret}"}).status_code
            == 401
        )
        unknown = http.put(
            url,
            json={"clients": {}, "extra": 1},
            headers={"Authorization": f"Bearer {module_issuer.settings.admin_secret}"},
        )
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_request"


def test_the_policy_is_stored_in_the_database(start_issuer: Any, tmp_path: Any) -> None:
    db_path = str(tmp_path / "issuer.db")
    with start_issuer(db_path=db_path).admin() as admin:
        admin.allow_id_jag("acme", "host-app", AS, [MCP])
    with start_issuer(db_path=db_path).admin() as admin:
        assert admin.id_jag_policy("acme")["clients"] == {
            "host-app": {"audiences": {AS: {"resources": [MCP]}}}
        }
