"""Property tests: whatever JSON arrives, the answer is a JSON 2xx/4xx, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from issuer_support import ADMIN_AUTH, ADMIN_SECRET, AUDIENCE, INNER_AUTH, ISSUE_PATH, SECRET, RunningIssuer

AUTH = {**INNER_AUTH, **ADMIN_AUTH}  # each route reads only its own secret

# Any text, lone surrogates included, and any float, NaN and infinities included: the body is sent
# as Python's json.dumps writes it (\ud800 escapes, NaN, Infinity), all of which must be refused cleanly.
_text = st.text(max_size=12) | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _field(good: Any) -> st.SearchStrategy[Any]:
    # Mostly the good value, so that one odd field at a time gets past the others to the store.
    return st.one_of(st.just(good), st.just(good), _text, json_values)


issue_bodies = st.fixed_dictionaries(
    {
        "tenant_id": _field("fuzz"),
        "user_id": _field("alice"),
        "app_id": _field(""),
        "audience": _field(AUDIENCE) | _text.map(lambda tail: "http://127.0.0.1/" + tail),
    },
    optional={
        "user_type": _field("account") | st.sampled_from(["end_user", "admin"]),
        "extra": json_values,
    },
)

mint_bodies = st.fixed_dictionaries(
    {"claims": st.dictionaries(st.sampled_from(["sub", "aud", "exp", "nbf", "iat", "x"]), json_values)},
    optional={
        "header": st.dictionaries(
            st.sampled_from(["alg", "kid", "typ", "crit", "jku"]),
            json_values | st.sampled_from(["RS256", "RS384", "PS512", "ES256", "EdDSA", "HS256", "none"]),
        ),
        "ttl": json_values,
        "hmac_key": st.none() | _text,
    },
)


@pytest.fixture(scope="module")
def client(module_issuer: RunningIssuer) -> Iterator[httpx.Client]:
    with module_issuer.admin() as admin:
        admin.create_user("fuzz", "alice")
        admin.grant("fuzz", "alice")
    with httpx.Client(base_url=module_issuer.url, headers=AUTH, timeout=10) as http:
        yield http


def _post(client: httpx.Client, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    raw = json.dumps(body).encode()
    return client.request(method, path, content=raw, headers={"Content-Type": "application/json"})


def _assert_clean(response: httpx.Response, allowed: set[int]) -> None:
    assert response.status_code in allowed, response.text
    body = response.json()
    assert isinstance(body, dict)
    if response.status_code >= 400:
        assert set(body) == {"error", "message"}
        assert SECRET not in response.text and ADMIN_SECRET not in response.text


@settings(max_examples=150, deadline=None)
@given(body=issue_bodies)
def test_issue_token_never_fails_badly(client: httpx.Client, body: dict[str, Any]) -> None:
    _assert_clean(_post(client, "POST", ISSUE_PATH, body), {200, 400, 404})


@settings(max_examples=150, deadline=None)
@given(body=mint_bodies)
def test_mint_never_fails_badly(client: httpx.Client, body: dict[str, Any]) -> None:
    _assert_clean(_post(client, "POST", "/admin/mint", body), {200, 400})


admin_bodies = st.sampled_from(
    [
        ("POST", "/admin/users", ("tenant_id", "user_id", "email", "name", "token_profile")),
        ("PUT", "/admin/users/fuzz/alice/grant", ("expires_at", "refresh_token")),
        ("PUT", "/admin/tenants/fuzz-policy/policy", ("deny", "allowed_audiences")),
    ]
).flatmap(
    lambda endpoint: st.tuples(
        st.just(endpoint[0]),
        st.just(endpoint[1]),
        st.dictionaries(st.sampled_from([*endpoint[2], "other"]), json_values | st.text(max_size=12)),
    )
)


@settings(max_examples=100, deadline=None)
@given(call=admin_bodies)
def test_admin_endpoints_never_fail_badly(client: httpx.Client, call: tuple[str, str, dict]) -> None:
    method, path, body = call
    _assert_clean(_post(client, method, path, body), {200, 201, 400, 409})
