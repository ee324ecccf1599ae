"""POST /inner/api/mcp/issue-token: the contract of DESIGN.md, status by status."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import jwt
import pytest
from issuer_support import AUDIENCE, ISSUE_PATH, SECRET, FakeClock, RunningIssuer, StartIssuer

from fake_enterprise import AdminAPIError, AdminClient

AUTH = {"Enterprise-Api-Secret-Key": SECRET}


def _verify(admin: AdminClient, token: str, *, audience: str = AUDIENCE) -> dict[str, Any]:
    keys = jwt.PyJWKSet.from_dict(admin.jwks())
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(
        token,
        keys[kid].key,
        algorithms=["RS256", "ES256", "EdDSA"],
        audience=audience,
        issuer=admin.discovery()["issuer"],
        options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]},
    )


def _expect_error(call: Callable[[], object], status: int, error: str) -> AdminAPIError:
    with pytest.raises(AdminAPIError) as info:
        call()
    assert (info.value.status, info.value.error) == (status, error)
    assert info.value.message
    return info.value


def test_issued_token_carries_the_contract_claims(
    module_issuer: RunningIssuer, admin: AdminClient, signed_in: str
) -> None:
    before = int(time.time())
    answer = admin.issue_token(signed_in, "alice", AUDIENCE, app_id="app-7")
    assert set(answer) == {"token", "expires_at", "token_type"}
    assert answer["token_type"] == "Bearer"
    assert isinstance(answer["expires_at"], int)
    claims = _verify(admin, answer["token"])
    assert claims["iss"] == module_issuer.url
    assert re.fullmatch("[0-9a-f]{32}", claims["sub"])
    assert claims["preferred_username"] == "alice"
    assert claims["aud"] == AUDIENCE
    assert claims["tenant_id"] == signed_in
    assert claims["email"] == "alice@acme.test"
    assert claims["name"] == "Alice"
    assert claims["user_type"] == "account"
    assert claims["azp"] == claims["client_id"] == "app-7"
    assert before <= claims["iat"] == claims["nbf"] <= int(time.time())
    assert claims["exp"] == answer["expires_at"] == claims["iat"] + 300
    header = jwt.get_unverified_header(answer["token"])
    assert header["typ"] == "JWT"
    assert header["alg"] == "RS256"
    assert "scope" not in claims


def test_audience_is_exactly_what_was_asked_for(admin: AdminClient, signed_in: str) -> None:
    other = "https://127.0.0.1:9443/other/mcp?x=1"
    token = admin.issue_token(signed_in, "alice", other)["token"]
    assert _verify(admin, token, audience=other)["aud"] == other
    with pytest.raises(jwt.InvalidAudienceError):
        _verify(admin, token, audience=AUDIENCE)


def test_end_user_type_and_empty_app_id(admin: AdminClient, signed_in: str) -> None:
    token = admin.issue_token(signed_in, "alice", AUDIENCE, user_type="end_user")["token"]
    claims = _verify(admin, token)
    assert claims["user_type"] == "end_user"
    assert claims["azp"] == "mcp-host"


def test_user_type_defaults_to_account(module_issuer: RunningIssuer, signed_in: str) -> None:
    body = {"tenant_id": signed_in, "user_id": "alice", "app_id": "", "audience": AUDIENCE}
    response = httpx.post(module_issuer.url + ISSUE_PATH, json=body, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert jwt.decode(response.json()["token"], options={"verify_signature": False})["user_type"] == "account"


def test_access_token_profile_per_issuer(start_issuer: StartIssuer) -> None:
    with start_issuer(token_profile="access_token", token_ttl=60, alg="ES256").admin() as admin:
        admin.create_user("acme", "bob")
        admin.grant("acme", "bob")
        answer = admin.issue_token("acme", "bob", AUDIENCE, app_id="agent")
        claims = _verify(admin, answer["token"])
    header = jwt.get_unverified_header(answer["token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert claims["client_id"] == "agent"
    assert claims["scope"]
    assert claims["exp"] - claims["iat"] == 60
    assert "email" not in claims
    assert claims["name"] == "bob"


def test_access_token_profile_per_user(admin: AdminClient, signed_in: str) -> None:
    admin.create_user(signed_in, "carol", token_profile="access_token")
    admin.grant(signed_in, "carol")
    carol = admin.issue_token(signed_in, "carol", AUDIENCE)["token"]
    alice = admin.issue_token(signed_in, "alice", AUDIENCE)["token"]
    assert jwt.get_unverified_header(carol)["typ"] == "at+jwt"
    assert jwt.get_unverified_header(alice)["typ"] == "JWT"
    assert _verify(admin, carol)["preferred_username"] == "carol"


def test_creating_a_user_twice_is_409(admin: AdminClient, signed_in: str) -> None:
    _expect_error(lambda: admin.create_user(signed_in, "alice"), 409, "user_exists")


def test_users_are_scoped_to_their_tenant(admin: AdminClient, signed_in: str) -> None:
    _expect_error(lambda: admin.issue_token(signed_in + "-other", "alice", AUDIENCE), 404, "unknown_user")


def test_unknown_user_is_404(admin: AdminClient, tenant: str) -> None:
    _expect_error(lambda: admin.issue_token(tenant, "nobody", AUDIENCE), 404, "unknown_user")
    _expect_error(lambda: admin.grant(tenant, "nobody"), 404, "unknown_user")
    _expect_error(lambda: admin.revoke(tenant, "nobody"), 404, "unknown_user")


def test_never_signed_in_is_428(admin: AdminClient, tenant: str) -> None:
    admin.create_user(tenant, "dave")
    _expect_error(lambda: admin.issue_token(tenant, "dave", AUDIENCE), 428, "no_refresh_token")
    assert admin.revoke(tenant, "dave")["revoked"] is False
    _expect_error(lambda: admin.issue_token(tenant, "dave", AUDIENCE), 428, "no_refresh_token")


def test_revoked_grant_is_rejected_on_the_very_next_call(admin: AdminClient, signed_in: str) -> None:
    admin.issue_token(signed_in, "alice", AUDIENCE)
    assert admin.revoke(signed_in, "alice")["revoked"] is True
    _expect_error(lambda: admin.issue_token(signed_in, "alice", AUDIENCE), 401, "refresh_rejected")
    assert admin.revoke(signed_in, "alice")["revoked"] is False
    admin.grant(signed_in, "alice")
    assert admin.issue_token(signed_in, "alice", AUDIENCE)["token"]


def test_expired_grant_is_rejected(start_issuer: StartIssuer) -> None:
    clock = FakeClock()
    with start_issuer(clock=clock).admin() as admin:
        admin.create_user("acme", "erin")
        granted = admin.grant("acme", "erin", expires_at=int(clock.now) + 10)
        assert granted["expires_at"] == int(clock.now) + 10
        assert admin.issue_token("acme", "erin", AUDIENCE)["expires_at"] == int(clock.now) + 300
        clock.now += 10
        _expect_error(lambda: admin.issue_token("acme", "erin", AUDIENCE), 401, "refresh_rejected")
        admin.grant("acme", "erin")
        assert admin.issue_token("acme", "erin", AUDIENCE)["token"]


def test_denied_tenant_is_403(admin: AdminClient, signed_in: str) -> None:
    assert admin.set_policy(signed_in, deny=True)["deny"] is True
    _expect_error(lambda: admin.issue_token(signed_in, "alice", AUDIENCE), 403, "policy_denied")
    _expect_error(lambda: admin.issue_token(signed_in, "nobody", AUDIENCE), 403, "policy_denied")
    admin.set_policy(signed_in)
    assert admin.issue_token(signed_in, "alice", AUDIENCE)["token"]


def test_audience_outside_the_allow_list_is_403(admin: AdminClient, signed_in: str, tenant: str) -> None:
    policy = admin.set_policy(signed_in, allowed_audiences=[AUDIENCE])
    assert policy == {"tenant_id": signed_in, "deny": False, "allowed_audiences": [AUDIENCE]}
    assert admin.issue_token(signed_in, "alice", AUDIENCE)["token"]
    other = "http://127.0.0.1:8765/other"
    _expect_error(lambda: admin.issue_token(signed_in, "alice", other), 403, "policy_denied")
    admin.create_user(tenant + "-b", "alice")
    admin.grant(tenant + "-b", "alice")
    assert admin.issue_token(tenant + "-b", "alice", other)["token"]
    admin.set_policy(signed_in, allowed_audiences=[])
    _expect_error(lambda: admin.issue_token(signed_in, "alice", AUDIENCE), 403, "policy_denied")


@pytest.mark.parametrize(
    "headers", [{}, {"Enterprise-Api-Secret-Key": "wrong"}, {"enterprise-api-secret-key": ""}]
)
def test_missing_or_wrong_secret_is_401_invalid_client(
    module_issuer: RunningIssuer, signed_in: str, headers: dict[str, str]
) -> None:
    body = {"tenant_id": signed_in, "user_id": "alice", "app_id": "", "audience": AUDIENCE}
    response = httpx.post(module_issuer.url + ISSUE_PATH, json=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert SECRET not in response.text


def test_the_secret_is_checked_before_the_body(module_issuer: RunningIssuer) -> None:
    response = httpx.post(
        module_issuer.url + ISSUE_PATH, content=b"not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401


@pytest.mark.anyio
async def test_200_concurrent_calls_all_succeed_with_distinct_jti(
    module_issuer: RunningIssuer, signed_in: str
) -> None:
    body = {"tenant_id": signed_in, "user_id": "alice", "app_id": "", "audience": AUDIENCE}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    tokens: list[str] = []
    url = module_issuer.url
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30, headers=AUTH) as client:

        async def call() -> None:
            response = await client.post(ISSUE_PATH, json=body)
            assert response.status_code == 200, response.text
            tokens.append(response.json()["token"])

        async with anyio.create_task_group() as group:
            for _ in range(200):
                group.start_soon(call)
    assert len(tokens) == 200
    async with httpx.AsyncClient(base_url=url) as client:
        keys = jwt.PyJWKSet.from_dict((await client.get("/.well-known/jwks.json")).json())
    jtis = set()
    for token in tokens:
        kid = jwt.get_unverified_header(token)["kid"]
        jtis.add(jwt.decode(token, keys[kid].key, algorithms=["RS256"], audience=AUDIENCE)["jti"])
    assert len(jtis) == 200
