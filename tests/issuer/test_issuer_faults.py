"""Fault injection: added latency, a forced issue-token status, an unavailable JWKS."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from issuer_support import AUDIENCE, RunningIssuer

from fake_enterprise import AdminAPIError, AdminClient


@pytest.fixture
def issuer(module_issuer: RunningIssuer) -> Iterator[RunningIssuer]:
    # Faults are issuer-wide: the module's tests share one issuer and clear them after each test.
    yield module_issuer
    with module_issuer.admin() as client:
        client.clear_faults()


@pytest.fixture
def admin(issuer: RunningIssuer) -> Iterator[AdminClient]:
    with issuer.admin() as client:
        client.clear_faults()
        try:
            client.create_user("acme", "alice")
        except AdminAPIError as exc:
            assert exc.error == "user_exists"
        client.grant("acme", "alice")
        yield client


def test_latency_delays_issue_token(admin: AdminClient) -> None:
    assert admin.set_faults(latency_ms=300)["latency_ms"] == 300
    started = time.monotonic()
    admin.issue_token("acme", "alice", AUDIENCE)
    assert time.monotonic() - started >= 0.3
    admin.clear_faults()
    started = time.monotonic()
    admin.issue_token("acme", "alice", AUDIENCE)
    assert time.monotonic() - started < 0.3


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, "injected_fault"), (500, "injected_fault"), (429, "injected_fault"), (428, "no_refresh_token")],
)
def test_forced_status(admin: AdminClient, status: int, error: str) -> None:
    admin.set_faults(issue_token_status=status)
    with pytest.raises(AdminAPIError) as info:
        admin.issue_token("acme", "alice", AUDIENCE)
    assert (info.value.status, info.value.error) == (status, error)
    assert admin.jwks()["keys"], "other endpoints are unaffected"
    admin.clear_faults()
    assert admin.issue_token("acme", "alice", AUDIENCE)["token"]


def test_forced_status_with_a_chosen_error_code(admin: AdminClient) -> None:
    admin.set_faults(issue_token_status=401, issue_token_error="refresh_rejected")
    with pytest.raises(AdminAPIError) as info:
        admin.issue_token("acme", "alice", AUDIENCE)
    assert (info.value.status, info.value.error) == (401, "refresh_rejected")


def test_forced_status_still_requires_the_secret(issuer: RunningIssuer, admin: AdminClient) -> None:
    admin.set_faults(issue_token_status=503)
    with (
        AdminClient(issuer.url, "wrong", inner_secret="wrong") as stranger,
        pytest.raises(AdminAPIError) as info,
    ):
        stranger.issue_token("acme", "alice", AUDIENCE)
    assert (info.value.status, info.value.error) == (401, "invalid_client")


def test_jwks_unavailable(issuer: RunningIssuer, admin: AdminClient) -> None:
    admin.set_faults(jwks_unavailable=True)
    response = httpx.get(issuer.url + "/.well-known/jwks.json")
    assert response.status_code == 503
    assert response.json()["error"] == "jwks_unavailable"
    assert admin.discovery()["issuer"] == issuer.url
    assert admin.issue_token("acme", "alice", AUDIENCE)["token"]
    admin.clear_faults()
    assert admin.jwks()["keys"]


def test_setting_faults_replaces_the_previous_set(admin: AdminClient) -> None:
    admin.set_faults(jwks_unavailable=True, latency_ms=5)
    current = admin.set_faults(issue_token_status=502)
    assert current == {
        "latency_ms": 0,
        "issue_token_status": 502,
        "issue_token_error": None,
        "jwks_unavailable": False,
    }
    assert admin.jwks()["keys"]
    assert admin.clear_faults()["issue_token_status"] is None
