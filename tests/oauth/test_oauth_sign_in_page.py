"""The sign-in page over plain HTTP: what it shows, typed and declined sign-ins, stale requests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from oauth_support import Pkce, RunningIssuer, query_of, register

RESOURCE = "http://127.0.0.1:9/mcp"


@pytest.fixture
def page_issuer(start_issuer: object) -> RunningIssuer:
    issuer: RunningIssuer = start_issuer(auto_login=False)  # type: ignore[operator]
    with issuer.admin() as admin:
        admin.create_user("acme", "alice", name="Alice <b>Example</b>")
        admin.create_user("acme", "bob")
    return issuer


@pytest.fixture
def page_http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as http:
        yield http


def _open_page(http: httpx.Client, issuer: RunningIssuer, **params: str) -> tuple[str, httpx.Response]:
    client = register(http, issuer.url, client_name="Page <script>alert(1)</script>")
    response = client.authorize(Pkce.new(), resource=RESOURCE, state="st", **params)
    assert response.status_code == 302
    page = http.get(response.headers["location"])
    request_id = query_of(response.headers["location"])["request"]
    return request_id, page


def test_page_shows_client_resource_and_users_escaped(
    page_issuer: RunningIssuer, page_http: httpx.Client
) -> None:
    _, page = _open_page(page_http, page_issuer, login_hint="acme/bob")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert RESOURCE in page.text
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    assert "<b>Example</b>" not in page.text
    assert 'data-user="acme/alice"' in page.text
    assert 'value="bob"' in page.text  # the login hint preselects the user


def test_typed_user_signs_in_and_unknown_user_gets_the_page_again(
    page_issuer: RunningIssuer, page_http: httpx.Client
) -> None:
    request_id, _ = _open_page(page_http, page_issuer)
    submit = f"{page_issuer.url}/oauth/sign-in"
    unknown = page_http.post(submit, data={"request": request_id, "tenant_id": "acme", "user_id": "mallory"})
    assert unknown.status_code == 400 and "no user &#39;mallory&#39;" in unknown.text
    done = page_http.post(
        submit, data={"request": request_id, "tenant_id": "acme", "user_id": "bob", "action": "allow"}
    )
    assert done.status_code == 303
    answer = query_of(done.headers["location"])
    assert answer["code"] and answer["state"] == "st" and answer["iss"] == page_issuer.url
    again = page_http.post(submit, data={"request": request_id, "account": "acme/bob"})
    assert again.status_code == 400 and "expired or was already answered" in again.text


def test_deny_redirects_access_denied(page_issuer: RunningIssuer, page_http: httpx.Client) -> None:
    request_id, _ = _open_page(page_http, page_issuer)
    denied = page_http.post(
        f"{page_issuer.url}/oauth/sign-in", data={"request": request_id, "action": "deny"}
    )
    assert denied.status_code == 303
    answer = query_of(denied.headers["location"])
    assert answer["error"] == "access_denied" and answer["state"] == "st" and "code" not in answer


def test_unknown_request_ids_get_the_error_page(page_issuer: RunningIssuer, page_http: httpx.Client) -> None:
    assert page_http.get(f"{page_issuer.url}/oauth/sign-in?request=nope").status_code == 400
    assert page_http.post(f"{page_issuer.url}/oauth/sign-in", data={"account": "acme/bob"}).status_code == 400
