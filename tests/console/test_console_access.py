"""Who gets into the console: the admin secret, a signed session cookie that expires, CSRF on every form."""

from __future__ import annotations

import httpx
import pytest
from console_support import (
    ADMIN_SECRET,
    SECRET,
    SESSION_COOKIE,
    ConsoleBrowser,
    FakeClock,
    RunningIssuer,
    StartIssuer,
    csrf_token,
)

ACTIONS = [
    "/console/users",
    "/console/grants",
    "/console/policies",
    "/console/keys/rotate",
    "/console/faults",
]


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name (the whole header, attributes included)."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def _attributes(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


def test_without_a_session_the_console_sends_you_to_sign_in(console: ConsoleBrowser) -> None:
    answer = console.page()
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in"
    form = console.sign_in_page()
    assert form.status_code == 200
    assert 'type="password"' in form.text and ADMIN_SECRET not in form.text


@pytest.mark.parametrize("path", ACTIONS)
def test_without_a_session_no_action_is_taken(
    console: ConsoleBrowser, module_issuer: RunningIssuer, tenant: str, path: str
) -> None:
    answer = console.http.post(path, data={"tenant_id": tenant, "user_id": "mallory", "action": "grant"})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    with module_issuer.admin() as admin:
        assert admin.create_user(tenant, "mallory")  # 201: the console did not create her


@pytest.mark.parametrize("secret", ["wrong", SECRET, "", ADMIN_SECRET + "x", ADMIN_SECRET[:-1]])
def test_a_wrong_secret_is_refused_and_gets_no_session(console: ConsoleBrowser, secret: str) -> None:
    answer = console.sign_in(secret)
    assert answer.status_code == 401
    assert "Wrong admin secret" in answer.text
    assert SESSION_COOKIE not in _set_cookies(answer)
    assert ADMIN_SECRET not in answer.text and SECRET not in answer.text
    assert console.page().status_code == 303


def test_the_right_secret_opens_a_session(console: ConsoleBrowser) -> None:
    answer = console.sign_in()
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    page = console.page()
    assert page.status_code == 200
    assert "issuer console" in page.text and ADMIN_SECRET not in page.text


def test_cookies_are_http_only_strict_and_scoped_to_the_console(console: ConsoleBrowser) -> None:
    form_cookie = _set_cookies(console.sign_in_page())["mcp_idfwd_console_sign_in"]
    session_cookie = _set_cookies(console.sign_in())[SESSION_COOKIE]
    for header in (form_cookie, session_cookie):
        attributes = _attributes(header)
        assert {"httponly", "samesite=strict", "path=/console"} <= attributes
        assert "secure" not in attributes  # the issuer is on http://127.0.0.1 here
        assert "max-age=3600" in attributes
    value = session_cookie.split(";", 1)[0].split("=", 1)[1]
    assert ADMIN_SECRET not in value


def test_cookies_are_secure_when_the_issuer_url_is_https(start_issuer: StartIssuer) -> None:
    # The issuer's URL is https (as behind a TLS proxy) while the test talks to its plain listener.
    issuer = start_issuer(issuer_url="https://issuer.example")
    with httpx.Client(base_url=issuer.url, timeout=10.0) as http:
        console = ConsoleBrowser(http)
        form = console.sign_in_page()
        token = csrf_token(form.text)
        cookie = form.cookies["mcp_idfwd_console_sign_in"]
        answer = http.post(
            "/console/sign-in",
            data={"csrf_token": token, "admin_secret": ADMIN_SECRET},
            headers={"Cookie": f"mcp_idfwd_console_sign_in={cookie}"},
        )
    assert answer.status_code == 303
    for name in ("mcp_idfwd_console_sign_in", SESSION_COOKIE):
        header = _set_cookies(answer if name == SESSION_COOKIE else form)[name]
        assert {"secure", "httponly", "samesite=strict", "path=/console"} <= _attributes(header)


def test_the_sign_in_form_needs_its_csrf_token(console: ConsoleBrowser) -> None:
    token = csrf_token(console.sign_in_page().text)
    missing = console.http.post("/console/sign-in", data={"admin_secret": ADMIN_SECRET})
    wrong = console.http.post(
        "/console/sign-in", data={"csrf_token": token[:-2] + "AA", "admin_secret": ADMIN_SECRET}
    )
    for answer in (missing, wrong):
        assert answer.status_code == 403
        assert "CSRF" in answer.text
        assert SESSION_COOKIE not in _set_cookies(answer)
    # The token is bound to the form's own cookie: without that cookie it is worth nothing.
    console.http.cookies.clear()
    stolen = console.http.post("/console/sign-in", data={"csrf_token": token, "admin_secret": ADMIN_SECRET})
    assert stolen.status_code == 403


@pytest.mark.parametrize("path", [*ACTIONS, "/console/sign-out"])
@pytest.mark.parametrize("csrf", [None, "", "not-the-token"])
def test_every_form_needs_the_session_csrf_token(
    signed_in: ConsoleBrowser, module_issuer: RunningIssuer, tenant: str, path: str, csrf: str | None
) -> None:
    answer = signed_in.post(
        path,
        {"tenant_id": tenant, "user_id": "mallory", "action": "grant", "latency_ms": "5"},
        csrf=csrf,
    )
    assert answer.status_code == 403
    assert "CSRF token is missing or wrong" in answer.text
    assert signed_in.page().status_code == 200  # still signed in: a refused sign-out did nothing
    with module_issuer.admin() as admin:
        assert admin.create_user(tenant, "mallory")
        assert admin.clear_faults()["latency_ms"] == 0


def test_a_csrf_token_of_another_session_is_refused(
    signed_in: ConsoleBrowser, module_issuer: RunningIssuer, tenant: str
) -> None:
    with httpx.Client(base_url=module_issuer.url, timeout=10.0) as other_http:
        other = ConsoleBrowser(other_http)
        other.sign_in()
        other_token = csrf_token(other.page().text)
    mine = csrf_token(signed_in.page().text)
    assert other_token != mine
    answer = signed_in.post("/console/users", {"tenant_id": tenant, "user_id": "eve"}, csrf=other_token)
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "header", [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Referer": "http://evil.example/page"}]
)
def test_a_form_posted_from_another_origin_is_refused(
    signed_in: ConsoleBrowser, module_issuer: RunningIssuer, tenant: str, header: dict[str, str]
) -> None:
    answer = signed_in.post("/console/users", {"tenant_id": tenant, "user_id": "eve"}, headers=header)
    assert answer.status_code == 403
    assert "another origin" in answer.text
    same = signed_in.post(
        "/console/users", {"tenant_id": tenant, "user_id": "eve"}, headers={"Origin": module_issuer.url}
    )
    assert same.status_code == 303


def test_a_session_expires(start_issuer: StartIssuer) -> None:
    clock = FakeClock()
    issuer = start_issuer(clock=clock, console_session_ttl=600)
    with httpx.Client(base_url=issuer.url, timeout=10.0) as http:
        console = ConsoleBrowser(http)
        console.sign_in()
        clock.now += 599
        assert console.page().status_code == 200
        clock.now += 1
        answer = console.page()
        assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"


@pytest.mark.parametrize(
    "forge",
    [
        lambda value: value[:-1] + ("A" if value[-1] != "A" else "B"),  # the MAC
        lambda value: value.replace("v1.1", "v1.2", 1),  # the start time
        lambda value: "v1.99999999999.aa.bb",
        lambda value: "",
    ],
)
def test_a_tampered_session_cookie_is_no_session(console: ConsoleBrowser, forge: object) -> None:
    console.sign_in()
    value = console.http.cookies[SESSION_COOKIE]
    console.http.cookies.clear()
    console.http.cookies.set(SESSION_COOKIE, forge(value), path="/console")  # type: ignore[operator]
    assert console.page().status_code == 303


def test_a_session_of_another_admin_secret_is_no_session(start_issuer: StartIssuer) -> None:
    first = start_issuer()
    second = start_issuer(admin_secret="another-admin-secret-77")
    with httpx.Client(base_url=first.url, timeout=10.0) as http:
        console = ConsoleBrowser(http)
        console.sign_in()
        cookie = http.cookies[SESSION_COOKIE]
    with httpx.Client(base_url=second.url, timeout=10.0) as http:
        http.cookies.set(SESSION_COOKIE, cookie, path="/console")
        assert http.get("/console").status_code == 303


def test_sign_out_ends_the_session_in_the_browser(signed_in: ConsoleBrowser) -> None:
    answer = signed_in.post("/console/sign-out", {})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    cleared = _set_cookies(answer)[SESSION_COOKIE]
    assert "max-age=0" in _attributes(cleared) and "path=/console" in _attributes(cleared)
    assert signed_in.page().status_code == 303


def test_pages_cannot_be_framed_or_cached(signed_in: ConsoleBrowser) -> None:
    page = signed_in.page()
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert (
        "frame-ancestors 'none'" in policy and "default-src 'none'" in policy and "script-src" not in policy
    )


def test_an_oversized_or_repeated_form_is_refused(signed_in: ConsoleBrowser, tenant: str) -> None:
    token = csrf_token(signed_in.page().text)
    huge = signed_in.http.post("/console/users", data={"csrf_token": token, "name": "x" * 20_000})
    assert huge.status_code == 403 and "exceeds" in huge.text
    repeated = signed_in.http.post(
        "/console/users",
        content=f"csrf_token={token}&tenant_id={tenant}&user_id=a&user_id=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 403 and "more than once" in repeated.text
    as_json = signed_in.http.post("/console/users", json={"csrf_token": token})
    assert as_json.status_code == 403
