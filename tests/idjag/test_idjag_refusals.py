"""Each processing rule of our authorization server, broken one at a time, gets its RFC 6749 §5.2 error."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from idjag_support import HOST_APP, OTHER_APP, IdJagMinter, RunningAS, redeem, running_as

from fake_mcp_server.authorization import ClientCredentials
from harness.pytest_plugin import IssuerHandle
from harness.servers import bind_loopback, socket_url


def _refused(response: httpx.Response, error: str, status: int = 400) -> str:
    """Assert the refusal and return its description."""
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    return body["error_description"]


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("claims", "header", "reason"),
    [
        ({}, {"typ": "JWT"}, "unexpected token type"),
        ({}, {"typ": "at+jwt"}, "unexpected token type"),
        ({}, {"typ": None}, "unexpected token type"),
        ({"aud": "http://127.0.0.1:9/another-authorization-server"}, {}, "wrong audience"),
        ({"client_id": OTHER_APP.client_id}, {}, "issued to another client"),
        ({"client_id": None}, {}, "missing client_id claim"),
        ({"iat": _now() - 900, "nbf": _now() - 900, "exp": _now() - 600}, {}, "token expired"),
        ({"iat": _now() + 600, "exp": _now() + 700}, {}, "not yet valid"),
        ({"exp": _now() + 3600}, {}, "lifetime over 300 seconds"),
        ({"iss": "http://127.0.0.1:9/untrusted-idp"}, {}, "not a trusted identity provider"),
        ({"resource": "http://127.0.0.1:9/another-server/mcp"}, {}, "for another resource"),
        ({"resource": None}, {}, "names no resource"),
        ({"jti": None}, {}, "missing jti claim"),
        ({"sub": None}, {}, "missing sub claim"),
        ({"scope": ["notes.read"]}, {}, "invalid scope claim"),
        ({}, {"alg": "none"}, "algorithm not allowed"),
        ({}, {"kid": "no-such-kid"}, "unknown signing key"),
        ({}, {"jwk": {"kty": "oct", "k": "AAAA"}}, "token-supplied keys"),
        ({}, {"crit": ["exp"]}, "critical header"),
    ],
    ids=[
        "typ-JWT",
        "typ-at+jwt",
        "typ-missing",
        "wrong-aud",
        "another-clients-id-jag",
        "no-client_id",
        "expired",
        "issued-in-the-future",
        "long-lived",
        "untrusted-iss",
        "resource-of-another-server",
        "no-resource",
        "no-jti",
        "no-sub",
        "scope-not-a-string",
        "alg-none",
        "unknown-kid",
        "embedded-jwk",
        "crit",
    ],
)
def test_a_defective_id_jag_is_invalid_grant(
    as_server: RunningAS, mint: IdJagMinter, claims: dict[str, Any], header: dict[str, Any], reason: str
) -> None:
    assertion = mint(claims, header)

    assert reason in _refused(redeem(as_server, assertion), "invalid_grant")


def test_an_hs256_assertion_keyed_with_anything_is_invalid_grant(
    as_server: RunningAS, mint: IdJagMinter
) -> None:
    assertion = mint({}, {"alg": "HS256"}, hmac_key="shared-secret-guess")

    assert "algorithm not allowed" in _refused(redeem(as_server, assertion), "invalid_grant")


@pytest.mark.parametrize("assertion", ["not-a-jwt", "a.b.c", "e30.e30.", "x" * 20_000], ids=str.__len__)
def test_garbage_is_invalid_grant(as_server: RunningAS, assertion: str) -> None:
    _refused(redeem(as_server, assertion), "invalid_grant")


def test_a_replayed_id_jag_is_invalid_grant(as_server: RunningAS, mint: IdJagMinter) -> None:
    assertion = mint()
    assert redeem(as_server, assertion).status_code == 200

    assert "already been used" in _refused(redeem(as_server, assertion), "invalid_grant")


def test_the_client_an_id_jag_names_can_redeem_it_and_no_other(
    as_server: RunningAS, mint: IdJagMinter
) -> None:
    assertion = mint({"client_id": OTHER_APP.client_id})

    _refused(redeem(as_server, assertion, client=HOST_APP), "invalid_grant")
    assert redeem(as_server, assertion, client=OTHER_APP).status_code == 200


def test_scopes_come_from_the_id_jag_not_the_request(as_server: RunningAS, mint: IdJagMinter) -> None:
    description = _refused(redeem(as_server, mint(), scope="notes.read notes.admin"), "invalid_scope")
    assert "notes.admin" in description

    unscoped = mint({"scope": None})
    _refused(redeem(as_server, unscoped, scope="notes.read"), "invalid_scope")
    granted = redeem(as_server, unscoped)
    assert granted.status_code == 200
    assert "scope" not in granted.json()


def test_a_refused_request_does_not_use_up_the_id_jag(as_server: RunningAS, mint: IdJagMinter) -> None:
    assertion = mint()
    _refused(redeem(as_server, assertion, scope="notes.admin"), "invalid_scope")

    assert redeem(as_server, assertion).status_code == 200


def test_a_resource_indicator_for_another_server_is_invalid_target(
    as_server: RunningAS, mint: IdJagMinter
) -> None:
    response = redeem(as_server, mint(), resource="http://127.0.0.1:9/another-server/mcp")

    _refused(response, "invalid_target")


def test_a_bad_client_secret_is_invalid_client(as_server: RunningAS, mint: IdJagMinter) -> None:
    wrong = ClientCredentials(HOST_APP.client_id, HOST_APP.client_secret + "x")

    _refused(redeem(as_server, mint(), client=wrong), "invalid_client", status=401)


def test_an_unknown_client_is_invalid_client(as_server: RunningAS, mint: IdJagMinter) -> None:
    stranger = ClientCredentials("stranger", "stranger-secret")

    _refused(
        redeem(as_server, mint({"client_id": "stranger"}), client=stranger), "invalid_client", status=401
    )


def test_refusals_never_echo_the_assertion(as_server: RunningAS, mint: IdJagMinter) -> None:
    assertion = mint({"aud": "http://127.0.0.1:9/elsewhere"})
    response = redeem(as_server, assertion)

    assert response.status_code == 400
    assert assertion not in response.text
    assert assertion.split(".")[1] not in response.text


def test_a_self_registered_client_redeems_id_jags_issued_to_it(
    as_server: RunningAS, mint: IdJagMinter
) -> None:
    registration = httpx.post(
        as_server.issuer + "/register",
        json={"redirect_uris": ["http://127.0.0.1:1/callback"], "client_name": "registered host"},
        timeout=10,
    )
    assert registration.status_code == 201, registration.text
    registered = registration.json()
    assert "urn:ietf:params:oauth:grant-type:jwt-bearer" in registered["grant_types"]
    client = ClientCredentials(registered["client_id"], registered["client_secret"])

    _refused(redeem(as_server, mint(), client=client), "invalid_grant")  # issued to host-app
    assert redeem(as_server, mint({"client_id": client.client_id}), client=client).status_code == 200


def test_a_public_client_cannot_register(as_server: RunningAS) -> None:
    registration = httpx.post(
        as_server.issuer + "/register",
        json={"redirect_uris": ["http://127.0.0.1:1/callback"], "token_endpoint_auth_method": "none"},
        timeout=10,
    )

    assert registration.status_code == 400
    assert registration.json()["error"] == "invalid_client_metadata"


def test_registration_is_off_unless_allowed(idfwd_issuer: IssuerHandle) -> None:
    with running_as(idfwd_issuer.url) as server:
        response = httpx.post(server.issuer + "/register", json={"redirect_uris": ["http://127.0.0.1:1/cb"]})
        metadata = httpx.get(server.issuer + "/.well-known/oauth-authorization-server").json()

    assert response.status_code in (404, 405)
    assert "registration_endpoint" not in metadata


def test_the_authorization_endpoint_says_only_id_jags_are_served(as_server: RunningAS) -> None:
    registered = httpx.post(
        as_server.issuer + "/register", json={"redirect_uris": ["http://127.0.0.1:1/callback"]}, timeout=10
    ).json()
    params = {
        "response_type": "code",
        "client_id": registered["client_id"],
        "redirect_uri": "http://127.0.0.1:1/callback",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
        "state": "s",
    }
    response = httpx.get(as_server.issuer + "/authorize", params=params, timeout=10)

    assert response.status_code == 302
    assert "error=unsupported_response_type" in response.headers["location"]


def test_an_unreachable_idp_is_503_not_a_refusal(idfwd_issuer: IssuerHandle) -> None:
    with bind_loopback() as dead:
        dead_idp = socket_url(dead)
    with running_as(dead_idp) as server:
        minted = IdJagMinter.for_server(idfwd_issuer.admin, server)
        response = redeem(server, minted({"iss": dead_idp}))

    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["retry-after"]) >= 1
