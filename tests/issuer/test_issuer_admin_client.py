"""The Python admin client: named exceptions, and no secret in errors, reprs or logs."""

from __future__ import annotations

import httpx
import pytest
import respx
from issuer_support import ADMIN_SECRET, AUDIENCE, SECRET, RunningIssuer

from fake_enterprise import AdminAPIError, AdminClient, AdminClientError, IssuerSettings
from harness.servers import bind_loopback, socket_url


def test_api_errors_carry_status_and_code_but_not_the_secret(module_issuer: RunningIssuer) -> None:
    with (
        AdminClient(module_issuer.url, ADMIN_SECRET + "-wrong") as admin,
        pytest.raises(AdminAPIError) as info,
    ):
        admin.create_user("acme", "alice")
    error = info.value
    assert (error.status, error.error) == (401, "invalid_token")
    assert isinstance(error, AdminClientError)
    for text in (str(error), repr(error), error.message):
        assert ADMIN_SECRET not in text


def test_ids_are_escaped_into_paths(module_issuer: RunningIssuer) -> None:
    with module_issuer.admin() as admin:
        admin.create_user("acme corp", "ali ce+@?#%")
        assert admin.grant("acme corp", "ali ce+@?#%")["user_id"] == "ali ce+@?#%"
        assert admin.issue_token("acme corp", "ali ce+@?#%", AUDIENCE)["token"]
        assert admin.revoke("acme corp", "ali ce+@?#%")["revoked"] is True


def test_slashes_in_ids_are_refused(module_issuer: RunningIssuer) -> None:
    with module_issuer.admin() as admin, pytest.raises(AdminAPIError) as info:
        admin.create_user("acme", "a/b")
    assert (info.value.status, info.value.error) == (400, "invalid_request")


def test_an_unreachable_issuer_is_a_client_error() -> None:
    with bind_loopback() as sock:
        url = socket_url(sock)
    with AdminClient(url, SECRET) as admin, pytest.raises(AdminClientError) as info:
        admin.jwks()
    assert not isinstance(info.value, AdminAPIError)
    assert url in str(info.value)
    assert SECRET not in str(info.value)


@respx.mock
def test_a_non_json_error_page_is_an_api_error() -> None:
    respx.post("http://127.0.0.1:9/admin/keys/rotate").mock(return_value=httpx.Response(502, text="<html>"))
    with AdminClient("http://127.0.0.1:9", SECRET) as admin, pytest.raises(AdminAPIError) as info:
        admin.rotate_keys()
    assert (info.value.status, info.value.error) == (502, "http_error")


@respx.mock
def test_a_non_json_success_is_a_client_error() -> None:
    respx.get("http://127.0.0.1:9/.well-known/jwks.json").mock(return_value=httpx.Response(200, text="ok"))
    with AdminClient("http://127.0.0.1:9", SECRET) as admin, pytest.raises(AdminClientError):
        admin.jwks()


def test_reprs_hide_secrets() -> None:
    settings = IssuerSettings(
        issuer_url="http://127.0.0.1:1", secret=SECRET, admin_secret=ADMIN_SECRET, data_key=b"K" * 32
    )
    assert SECRET not in repr(settings) and ADMIN_SECRET not in repr(settings)
    assert "KKKK" not in repr(settings)
    with AdminClient("http://127.0.0.1:1", ADMIN_SECRET, inner_secret=SECRET) as admin:
        assert SECRET not in repr(admin) and ADMIN_SECRET not in repr(admin)


def test_issue_token_needs_the_inner_secret(module_issuer: RunningIssuer) -> None:
    with AdminClient(module_issuer.url, ADMIN_SECRET) as admin, pytest.raises(AdminClientError) as info:
        admin.issue_token("acme", "alice", AUDIENCE)
    assert "inner_secret" in str(info.value)
    assert not isinstance(info.value, AdminAPIError)


@pytest.mark.parametrize(
    "overrides",
    [
        {"issuer_url": "ftp://127.0.0.1"},
        {"issuer_url": "http://127.0.0.1/?q=1"},
        {"secret": ""},
        {"admin_secret": ""},
        {"admin_secret": SECRET},
        {"alg": "HS256"},
        {"token_profile": "saml"},
        {"token_ttl": 0},
        {"token_ttl": True},
        {"data_key": b"short"},
    ],
)
def test_bad_settings_are_refused(overrides: dict) -> None:
    fields = {"issuer_url": "http://127.0.0.1:1", "secret": SECRET, "admin_secret": ADMIN_SECRET, **overrides}
    with pytest.raises(ValueError) as info:
        IssuerSettings(**fields)
    assert SECRET not in str(info.value) and ADMIN_SECRET not in str(info.value)
