"""Fuzzing the issuer's inner and admin APIs and the MCP server's Authorization header (hypothesis).

Properties, for every generated request: never a 5xx, an error is a JSON object with an `error`
code, and no secret (the inner API secret, a stored refresh token) ever appears in a response.
The server additionally never admits a request without a valid token, and never accepts a
signed token addressed to another audience or issuer. Examples are derandomized (the same on
every run) and bounded, so this stays fast and never flaky.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from load_support import provider_for

from client_runtime import IssuedToken, MCPIdentityForwardingError, MCPToolRuntime, TokenBroker
from fake_enterprise import SECRET_HEADER
from harness.conformance import initialize_request
from harness.stack import LocalStack

TENANT = "fuzz-tenant"  # the fuzzed admin calls pick their own tenants; this one stays as set up
KNOWN_USER = "fuzz-known"
ISSUE_TOKEN_PATH = "/inner/api/mcp/issue-token"
FUZZ = settings(
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
INITIALIZE = initialize_request("fuzz")
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class Target:
    stack: LocalStack
    refresh_token: str = field(repr=False)
    # No keep-alive: every request on a fresh connection, so no state carries between examples.
    http: httpx.Client = field(
        default_factory=lambda: httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10)
    )

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.stack.secret, self.stack.admin_secret, self.refresh_token)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with LocalStack() as stack:
        refresh_token = "refresh-" + secrets.token_urlsafe(24)
        stack.admin.create_user(TENANT, KNOWN_USER, email="known@example.com")
        stack.admin.grant(TENANT, KNOWN_USER, refresh_token=refresh_token)
        fuzz_target = Target(stack, refresh_token)
        try:
            yield fuzz_target
        finally:
            fuzz_target.http.close()


def check_issuer_response(target: Target, response: httpx.Response) -> None:
    event(f"HTTP {response.status_code}")  # shown by --hypothesis-show-statistics
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url.path}: {response.text}"
    )
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str)
    exposed = response.text + "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    for secret in target.secrets:
        assert secret not in exposed


# --- strategies ---------------------------------------------------------------------------------

# Text with the odd characters that trip storage and crypto layers: controls, lone surrogates, NUL.
odd_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
        st.sampled_from("\x00\x1f\x7f/%?#:.\\\"'"),
    ),
    max_size=40,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
    st.sampled_from(["", "acme", KNOWN_USER, TENANT, "http://127.0.0.1:9/mcp", "ftp://x", "RS256", "none"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(odd_text, children, max_size=4),
    max_leaves=12,
)
ISSUE_FIELDS = ("tenant_id", "user_id", "app_id", "audience", "user_type")


def valid_issue_body(audience: str) -> dict[str, Any]:
    return {
        "tenant_id": TENANT,
        "user_id": KNOWN_USER,
        "app_id": "",
        "audience": audience,
        "user_type": "account",
    }


@st.composite
def mostly_valid(draw: st.DrawFn, base: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`base` with a few members replaced by arbitrary values, removed, or joined by unknown ones."""
    body = dict(base)
    changed = draw(st.lists(st.sampled_from(names), max_size=3, unique=True)) if names else []
    for name in changed:
        if draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = draw(json_values)
    body.update(draw(st.dictionaries(odd_text, json_values, max_size=2)))
    return body


def bodies(base: dict[str, Any], names: tuple[str, ...]) -> st.SearchStrategy[bytes | None]:
    """Request bodies: none, arbitrary bytes, any JSON document, or a mostly valid object."""
    as_json = st.one_of(json_values, mostly_valid(base, names), st.just(base))
    return st.one_of(
        st.none(),
        st.binary(max_size=120),
        as_json.map(lambda value: json.dumps(value).encode()),
    )


# Mostly what a real caller sends, so most examples get past the first checks to the interesting ones.
content_types = st.sampled_from(
    [*["application/json"] * 6, "application/json; charset=utf-8", "text/plain", "multipart/form-data", None]
)
credentials = st.sampled_from([*["right"] * 8, "wrong", "missing"])


def headers_for(
    target: Target, credential: str, content_type: str | None, *, admin: bool = False
) -> dict[str, str]:
    """The headers of a request to the inner API, or with `admin` to the admin API."""
    headers = {}
    if admin:
        if credential == "right":
            headers["Authorization"] = f"Bearer {target.stack.admin_secret}"
        elif credential == "wrong":
            headers["Authorization"] = f"Bearer {target.stack.secret}"  # the inner secret opens nothing here
    elif credential == "right":
        headers[SECRET_HEADER] = target.stack.secret
    elif credential == "wrong":
        headers[SECRET_HEADER] = "not-the-secret"
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


# --- the issuer's inner API ---------------------------------------------------------------------


@FUZZ
@given(data=st.data(), credential=credentials, content_type=content_types)
def test_fuzzed_issue_token_requests_get_clean_4xx_or_a_token_and_leak_nothing(
    target: Target, data: st.DataObject, credential: str, content_type: str | None
) -> None:
    body = data.draw(bodies(valid_issue_body(target.stack.server_url), ISSUE_FIELDS))
    response = target.http.post(
        target.stack.issuer_url + ISSUE_TOKEN_PATH,
        content=body,
        headers=headers_for(target, credential, content_type),
    )
    check_issuer_response(target, response)
    if response.status_code == 200:
        assert credential == "right"
        assert set(response.json()) == {"token", "expires_at", "token_type"}


# --- the issuer's admin API ---------------------------------------------------------------------

path_segment = st.one_of(st.sampled_from([TENANT, KNOWN_USER, "acme"]), odd_text).map(
    lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")
)


@st.composite
def admin_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], tuple[str, ...]]:
    """(method, path, a plausible body, that body's field names) for one admin endpoint."""
    tenant, user = draw(path_segment), draw(path_segment)
    return draw(
        st.sampled_from(
            [
                (
                    "POST",
                    "/admin/users",
                    {"tenant_id": "t", "user_id": "u", "email": "e", "name": "n"},
                    ("tenant_id", "user_id", "email", "name", "token_profile"),
                ),
                (
                    "PUT",
                    f"/admin/users/{tenant}/{user}/grant",
                    {"expires_at": 4_000_000_000},
                    ("expires_at", "refresh_token"),
                ),
                ("DELETE", f"/admin/users/{tenant}/{user}/grant", {}, ()),
                (
                    "PUT",
                    f"/admin/tenants/{tenant}/policy",
                    {"deny": False, "allowed_audiences": []},
                    ("deny", "allowed_audiences"),
                ),
                ("POST", "/admin/keys/rotate", {"alg": "EdDSA"}, ("alg",)),
                (
                    "PUT",
                    "/admin/faults",
                    {"latency_ms": 0},
                    ("latency_ms", "issue_token_status", "issue_token_error", "jwks_unavailable"),
                ),
                ("DELETE", "/admin/faults", {}, ()),
                (
                    "POST",
                    "/admin/mint",
                    {"claims": {"sub": "x"}, "ttl": 60},
                    ("claims", "header", "ttl", "hmac_key"),
                ),
                ("GET", "/admin/users", {}, ()),
                ("POST", f"/admin/unknown/{tenant}", {}, ()),
            ]
        )
    )


@FUZZ
@given(data=st.data(), request=admin_requests(), credential=credentials, content_type=content_types)
def test_fuzzed_admin_requests_get_clean_answers_and_leak_nothing(
    target: Target,
    data: st.DataObject,
    request: tuple[str, str, dict[str, Any], tuple[str, ...]],
    credential: str,
    content_type: str | None,
) -> None:
    method, path, base, names = request
    body = data.draw(bodies(base, names))
    try:
        response = target.http.request(
            method,
            target.stack.issuer_url + path,
            content=body,
            headers=headers_for(target, credential, content_type, admin=True),
        )
        check_issuer_response(target, response)
    finally:
        # Put back what the fuzzed call may have changed: faults, the known user's tenant and grant.
        target.stack.admin.clear_faults()
        target.stack.admin.set_policy(TENANT)
        target.stack.admin.grant(TENANT, KNOWN_USER, refresh_token=target.refresh_token)
    # Whatever the admin calls did, the issuer still serves its JWKS and mints for a known user.
    assert target.stack.admin.jwks()["keys"]


def test_the_issuer_still_works_after_the_admin_fuzzing(target: Target) -> None:
    issued = target.stack.admin.issue_token(TENANT, KNOWN_USER, target.stack.server_url)
    assert issued["token_type"] == "Bearer"


# --- the MCP server's Authorization header ------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


header_bytes = st.binary(max_size=160).map(
    lambda raw: bytes(b for b in raw if b == 0x09 or 0x20 <= b != 0x7F).strip(b" \t")
)


@st.composite
def token_like(draw: st.DrawFn) -> bytes:
    """Three dot-separated base64url segments: a JOSE-ish header, JSON claims, random bytes."""
    header = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "alg": st.sampled_from(["RS256", "ES256", "EdDSA", "HS256", "none", "PS256", "RS1"])
                | odd_text,
                "kid": odd_text | json_values,
                "typ": st.sampled_from(["JWT", "at+jwt", "jwt"]) | json_values,
                "crit": json_values,
                "jwk": json_values,
                "jku": st.just("http://127.0.0.1:9/jwks"),
            },
        )
    )
    claims = draw(
        st.dictionaries(st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf"]) | odd_text, json_values)
    )
    segments = [
        b64url(json.dumps(header).encode()),
        b64url(json.dumps(claims).encode()),
        b64url(draw(st.binary(max_size=64))),
    ]
    count = draw(st.sampled_from([3, 3, 3, 1, 2, 4]))
    return ".".join((segments * 2)[:count]).encode()


authorization_values = st.one_of(
    header_bytes,
    st.tuples(
        st.sampled_from([b"Bearer ", b"bearer ", b"Bearer  ", b"Basic ", b"Bearer\t", b""]), token_like()
    ).map(b"".join),
    st.tuples(st.just(b"Bearer "), header_bytes).map(b"".join),
).map(lambda value: value.strip(b" \t"))  # HTTP itself trims a field value's edges


@FUZZ
@given(values=st.lists(authorization_values, min_size=1, max_size=2))
def test_fuzzed_authorization_headers_are_refused_with_a_401_challenge_and_not_echoed(
    target: Target, values: list[bytes]
) -> None:
    headers = [(name.encode(), value.encode()) for name, value in MCP_HEADERS.items()]
    headers += [(b"Authorization", value) for value in values]
    response = target.http.post(
        target.stack.server_url, content=json.dumps(INITIALIZE).encode(), headers=headers
    )
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert isinstance(response.json().get("error"), str)
    exposed = response.content + response.headers["WWW-Authenticate"].encode("latin-1")
    for value in values:
        credential = value.partition(b" ")[2].strip() or value
        if len(credential) >= 8:
            assert credential not in exposed


class _FixedToken:
    """A token source that hands out one given token (as if the issuer had minted it)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def issue_token(
        self, *, tenant_id: str, user_id: str, audience: str, user_type: str = "account"
    ) -> IssuedToken:
        return IssuedToken(token=self._token, expires_at=time.time() + 300)


claim_names = (
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "tenant_id",
    "email",
    "name",
    "scope",
    "client_id",
)


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_signed_tokens_with_fuzzed_claims_never_crash_the_server_nor_pass_for_another_audience(
    target: Target, data: st.DataObject
) -> None:
    server_url, issuer_url = target.stack.server_url, target.stack.issuer_url
    overrides = data.draw(
        st.dictionaries(
            st.sampled_from(claim_names),
            st.one_of(
                json_values,
                st.sampled_from(
                    [server_url, [server_url, "http://127.0.0.1:9/other"], "http://127.0.0.1:9/other"]
                ),
                st.sampled_from([issuer_url, issuer_url + "/", "http://127.0.0.1:9"]),
                st.integers(min_value=0, max_value=2**40),
            ),
            max_size=5,
        )
    )
    claims = {"sub": "fuzzed-subject", "aud": server_url, **overrides}
    header = data.draw(
        st.fixed_dictionaries({}, optional={"typ": st.sampled_from(["JWT", "at+jwt", "foo"]) | json_values})
    )
    minted = target.stack.admin.mint(claims, header=header or None)
    runtime = MCPToolRuntime(broker=TokenBroker(_FixedToken(minted)), timeout=20)

    async def whoami() -> Any:
        with anyio.fail_after(30):
            return await runtime.invoke(
                provider_for(server_url), "whoami", tenant_id="acme", user_id="anyone"
            )

    try:
        result = anyio.run(whoami)
    except MCPIdentityForwardingError as refused:
        assert refused.status_code == 401
        event("refused")
        return
    event("admitted, tool error" if result.is_error else "admitted")
    # Admitted: then the token really was for this server, from this issuer, and whoami tells it.
    effective = {name: value for name, value in claims.items() if value is not None}  # None removes
    audiences = effective.get("aud") if isinstance(effective.get("aud"), list) else [effective.get("aud")]
    assert server_url in audiences
    assert effective.get("iss", issuer_url) == issuer_url
    if not result.is_error:
        assert result.structured_content is not None
        assert result.structured_content["sub"] == effective["sub"]
