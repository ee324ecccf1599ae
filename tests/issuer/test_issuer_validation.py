"""Bad input gets a clear 4xx JSON error: never a 500, a stack trace, or the secret echoed back."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from issuer_support import ADMIN_AUTH, ADMIN_SECRET, AUDIENCE, INNER_AUTH, ISSUE_PATH, SECRET, RunningIssuer

from fake_enterprise import IssuerSettings, create_app
from harness.servers import bind_loopback, serve_in_thread, socket_url

# Both secrets: each route reads only its own, so one header set serves the inner and admin paths.
AUTH = {**INNER_AUTH, **ADMIN_AUTH}
JSON = {**AUTH, "Content-Type": "application/json"}
GOOD = {"tenant_id": "acme", "user_id": "alice", "app_id": "", "audience": AUDIENCE}


@pytest.fixture
def http(module_issuer: RunningIssuer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_issuer.url, timeout=10) as client:
        yield client


def _assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == error
    assert body["message"]
    assert SECRET not in response.text
    assert "Traceback" not in response.text


MALFORMED = {
    "truncated": b"{",
    "text": b"not json",
    "array": b"[]",
    "string": b'"a string"',
    "null": b"null",
    "bad-utf8": b"\xff\xfe\x00garbage",
    "nan": b'{"tenant_id": NaN}',
    "infinity": b'{"tenant_id": Infinity}',
    "dup-key": b'{"tenant_id": "a", "tenant_id": "b"}',
    "deep": b"[" * 30_000 + b"]" * 30_000,
    "bigint": b'{"user_type": ' + b"9" * 5000 + b"}",
    "huge-float": b'{"tenant_id": 1e400}',
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_400(http: httpx.Client, raw: bytes) -> None:
    _assert_error(http.post(ISSUE_PATH, content=raw, headers=JSON), 400, "invalid_request")


@pytest.mark.parametrize(
    "change",
    [
        {"tenant_id": 7},
        {"tenant_id": ""},
        {"tenant_id": None},
        {"user_id": ["alice"]},
        {"user_id": "a" * 257},
        {"user_id": "al\nice"},
        {"app_id": None},
        {"app_id": 3},
        {"audience": None},
        {"audience": 42},
        {"audience": ""},
        {"audience": "ftp://127.0.0.1/mcp"},
        {"audience": "file:///etc/passwd"},
        {"audience": "javascript:alert(1)"},
        {"audience": "/relative/mcp"},
        {"audience": "127.0.0.1:8765/mcp"},
        {"audience": "http://"},
        {"audience": "http://127.0.0.1:99999/mcp"},
        {"audience": "http://127.0.0.1/mcp#frag"},
        {"audience": "http://127.0.0.1/ mcp"},
        {"audience": "http://127.0.0.1/" + "a" * 2100},
        {"user_type": "admin"},
        {"user_type": True},
        {"extra": "field"},
    ],
    ids=lambda change: ",".join(f"{k}={str(v)[:20]!r}" for k, v in change.items()),
)
def test_wrong_fields_are_400(http: httpx.Client, change: dict) -> None:
    body = {**GOOD, **change}
    _assert_error(http.post(ISSUE_PATH, json=body, headers=AUTH), 400, "invalid_request")


@pytest.mark.parametrize("missing", ["tenant_id", "user_id", "app_id", "audience"])
def test_missing_fields_are_400(http: httpx.Client, missing: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != missing}
    response = http.post(ISSUE_PATH, json=body, headers=AUTH)
    _assert_error(response, 400, "invalid_request")
    assert missing in response.json()["message"]


def test_a_float_beyond_range_is_400_even_where_anything_goes(http: httpx.Client) -> None:
    # Python reads 1e400 as inf; in a minted claim it would reach int() and JSON encoding.
    raw = b'{"claims": {"exp": 1e400, "deep": [{"x": -1e999}]}}'
    _assert_error(http.post("/admin/mint", content=raw, headers=JSON), 400, "invalid_request")


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (
            ISSUE_PATH,
            b'{"tenant_id": "a\\ud800", "user_id": "u", "app_id": "", "audience": "http://127.0.0.1/"}',
        ),
        ("/admin/users", b'{"tenant_id": "acme", "user_id": "\\udfff"}'),
        ("/admin/mint", b'{"claims": {}, "header": {"alg": "HS256"}, "hmac_key": "\\ud83d"}'),
    ],
)
def test_lone_surrogate_escapes_are_400(http: httpx.Client, path: str, raw: bytes) -> None:
    _assert_error(http.post(path, content=raw, headers=JSON), 400, "invalid_request")


def test_unknown_field_is_named(http: httpx.Client) -> None:
    response = http.post(ISSUE_PATH, json={**GOOD, "scope": "all"}, headers=AUTH)
    _assert_error(response, 400, "invalid_request")
    assert "scope" in response.json()["message"]


def test_body_over_64_kib_is_413(http: httpx.Client) -> None:
    body = {**GOOD, "app_id": "x" * (64 * 1024)}
    _assert_error(http.post(ISSUE_PATH, json=body, headers=AUTH), 413, "request_too_large")


def test_chunked_body_over_64_kib_is_413(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    response = http.post(ISSUE_PATH, content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    _assert_error(response, 413, "request_too_large")


def test_body_of_exactly_64_kib_is_read(http: httpx.Client) -> None:
    raw = httpx.Request("POST", "/", json=GOOD).content
    padded = raw + b" " * (64 * 1024 - len(raw))
    response = http.post(ISSUE_PATH, content=padded, headers=JSON)
    _assert_error(response, 404, "unknown_user")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_type_is_415(http: httpx.Client, content_type: str | None) -> None:
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    raw = httpx.Request("POST", "/", json=GOOD).content
    _assert_error(http.post(ISSUE_PATH, content=raw, headers=headers), 415, "unsupported_media_type")


def test_json_content_type_with_charset_is_accepted(http: httpx.Client) -> None:
    raw = httpx.Request("POST", "/", json=GOOD).content
    headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    _assert_error(http.post(ISSUE_PATH, content=raw, headers=headers), 404, "unknown_user")


def test_unknown_path_is_json_404(http: httpx.Client) -> None:
    _assert_error(http.get("/admin/nothing-here"), 404, "not_found")


def test_wrong_method_is_json_405(http: httpx.Client) -> None:
    response = http.get(ISSUE_PATH)
    _assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/admin/users", {"tenant_id": "acme"}),
        ("POST", "/admin/users", {"tenant_id": "acme", "user_id": "u", "email": 5}),
        ("POST", "/admin/users", {"tenant_id": "acme", "user_id": "u", "token_profile": "saml"}),
        ("POST", "/admin/users", {"tenant_id": "acme", "user_id": "u", "role": "admin"}),
        ("PUT", "/admin/users/acme/alice/grant", {"expires_at": "tomorrow"}),
        ("PUT", "/admin/users/acme/alice/grant", {"expires_at": True}),
        ("PUT", "/admin/users/acme/alice/grant", {"expires_at": -1}),
        ("PUT", "/admin/users/acme/alice/grant", {"expires_at": 1.5}),
        ("PUT", "/admin/tenants/acme/policy", {"deny": "yes"}),
        ("PUT", "/admin/tenants/acme/policy", {"allowed_audiences": "http://127.0.0.1/mcp"}),
        ("PUT", "/admin/tenants/acme/policy", {"allowed_audiences": ["ftp://127.0.0.1/"]}),
        ("POST", "/admin/keys/rotate", {"alg": "HS256"}),
        ("POST", "/admin/keys/rotate", {"alg": "none"}),
        ("PUT", "/admin/faults", {"latency_ms": -1}),
        ("PUT", "/admin/faults", {"latency_ms": 3_600_000}),
        ("PUT", "/admin/faults", {"issue_token_status": 200}),
        ("PUT", "/admin/faults", {"issue_token_status": "503"}),
        ("PUT", "/admin/faults", {"jwks_unavailable": 1}),
        ("PUT", "/admin/faults", {"break_everything": True}),
        ("POST", "/admin/mint", {}),
        ("POST", "/admin/mint", {"claims": []}),
        ("POST", "/admin/mint", {"claims": {}, "header": "RS256"}),
        ("POST", "/admin/mint", {"claims": {}, "header": {"alg": 5}}),
        ("POST", "/admin/mint", {"claims": {}, "header": {"alg": None}}),
        ("POST", "/admin/mint", {"claims": {}, "header": {"alg": "HS256"}}),
        ("POST", "/admin/mint", {"claims": {}, "header": {"alg": "ES512"}}),
        ("POST", "/admin/mint", {"claims": {}, "hmac_key": "k"}),
        ("POST", "/admin/mint", {"claims": {}, "ttl": "60"}),
        ("POST", "/admin/mint", {"claims": {}, "ttl": 10**12}),
    ],
)
def test_bad_admin_bodies_are_400(http: httpx.Client, method: str, path: str, body: dict) -> None:
    http.post("/admin/users", json={"tenant_id": "acme", "user_id": "alice"}, headers=AUTH)
    _assert_error(http.request(method, path, json=body, headers=AUTH), 400, "invalid_request")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/users"),
        ("PUT", "/admin/users/acme/alice/grant"),
        ("DELETE", "/admin/users/acme/alice/grant"),
        ("PUT", "/admin/tenants/acme/policy"),
        ("POST", "/admin/keys/rotate"),
        ("PUT", "/admin/faults"),
        ("DELETE", "/admin/faults"),
        ("POST", "/admin/mint"),
    ],
)
def test_every_admin_endpoint_needs_the_admin_secret(http: httpx.Client, method: str, path: str) -> None:
    for headers in (
        {},
        {"Authorization": f"Bearer {ADMIN_SECRET}x"},
        {"Authorization": f"Basic {ADMIN_SECRET}"},
        INNER_AUTH,  # the inner secret, which every host holds, opens nothing here
        {"Authorization": f"Bearer {SECRET}"},
    ):
        response = http.request(method, path, json={}, headers=headers)
        _assert_error(response, 401, "invalid_token")
        assert response.headers["www-authenticate"].startswith("Bearer ")


def test_admin_path_ids_are_validated(http: httpx.Client) -> None:
    _assert_error(http.put("/admin/tenants/" + "t" * 300 + "/policy", headers=AUTH), 400, "invalid_request")
    _assert_error(http.put("/admin/users/acme/ali%01ce/grant", headers=AUTH), 400, "invalid_request")


def test_non_ascii_secret_header_is_invalid_client(http: httpx.Client) -> None:
    headers = [(b"Enterprise-Api-Secret-Key", "sécret".encode("latin-1"))]
    _assert_error(http.post(ISSUE_PATH, json=GOOD, headers=headers), 401, "invalid_client")


def test_an_internal_fault_is_a_bare_json_500(caplog: pytest.LogCaptureFixture) -> None:
    sock = bind_loopback()
    app = create_app(IssuerSettings(issuer_url=socket_url(sock), secret=SECRET, admin_secret=ADMIN_SECRET))
    with serve_in_thread(app, sock) as served, httpx.Client(base_url=served.url) as client:
        app.state.issuer.close()  # the database is gone: the handler raises something unplanned
        response = client.post(ISSUE_PATH, json=GOOD, headers=AUTH)
        _assert_error(response, 500, "server_error")
        assert response.json()["message"] == "internal error"
    assert "ProgrammingError" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.anyio
async def test_a_client_hanging_up_mid_body_is_routine_not_a_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(
        IssuerSettings(issuer_url="http://127.0.0.1:9", secret=SECRET, admin_secret=ADMIN_SECRET)
    )
    messages = iter(
        [
            {"type": "http.request", "body": b'{"tenant_id":', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": ISSUE_PATH,
        "raw_path": ISSUE_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
            (b"enterprise-api-secret-key", SECRET.encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 9),
    }
    with caplog.at_level("DEBUG"):
        await app(scope, receive, send)  # must not raise (uvicorn would log a traceback)
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
    assert sent[0]["status"] != 500
