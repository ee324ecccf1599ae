"""Every branch of the issue-token error mapping and the expires_at rules (respx-mocked issuer)."""

from __future__ import annotations

import json
import math
import ssl

import anyio
import httpx
import pytest
import respx
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IssuedToken,
    MCPIdentityRefreshError,
    MCPIssuerConfigError,
    MCPNoRefreshTokenError,
    MCPTokenError,
)

pytestmark = pytest.mark.anyio

ISSUER = "https://issuer.test"
ENDPOINT = f"{ISSUER}/inner/api/mcp/issue-token"
SECRET = "inner-secret-S3cr3t"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2VuLXRleHQ.c2lnbmF0dXJlLXRleHQ"
AUDIENCE = "http://127.0.0.1:9/mcp"


def settings(**overrides: object) -> EnterpriseTokenSettings:
    values: dict[str, object] = {
        "issuer_url": ISSUER,
        "inner_api_secret": SECRET,
        "retries": 2,
        "backoff": 0.0,
    }
    values.update(overrides)
    return EnterpriseTokenSettings(**values)  # type: ignore[arg-type]


# Building a TLS context per client is slow; the mocked issuer never needs one anyway.
TLS = ssl.create_default_context()


async def issue(client_settings: EnterpriseTokenSettings | None = None) -> IssuedToken:
    async with (
        httpx.AsyncClient(verify=TLS) as http,
        EnterpriseTokenClient(client_settings or settings(), http_client=http) as client,
    ):
        return await client.issue_token(tenant_id="t1", user_id="alice", audience=AUDIENCE)


def assert_no_secrets(exc: BaseException) -> None:
    for text in (str(exc), repr(exc)):
        assert TOKEN not in text
        assert SECRET not in text


@respx.mock
async def test_success_sends_the_contract_request_and_parses_the_token() -> None:
    route = respx.post(ENDPOINT).respond(
        200, json={"token": TOKEN, "expires_at": 2_000_000_000, "token_type": "Bearer"}
    )
    issued = await issue()
    assert issued.token == TOKEN
    assert issued.expires_at == 2_000_000_000.0
    request = route.calls.last.request
    assert request.headers["Enterprise-Api-Secret-Key"] == SECRET
    assert json.loads(request.content) == {
        "tenant_id": "t1",
        "user_id": "alice",
        "app_id": "",
        "audience": AUDIENCE,
        "user_type": "account",
    }
    assert TOKEN not in repr(issued)


@pytest.mark.parametrize("expires_at", [2_000_000_000, 2_000_000_000.5])
@respx.mock
async def test_expires_at_accepts_int_and_float(expires_at: float) -> None:
    respx.post(ENDPOINT).respond(200, json={"token": TOKEN, "expires_at": expires_at})
    assert (await issue()).expires_at == float(expires_at)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"token": TOKEN, "expires_at": True}, id="bool-expires_at"),
        pytest.param({"token": TOKEN, "expires_at": False}, id="false-expires_at"),
        pytest.param({"token": TOKEN}, id="missing-expires_at"),
        pytest.param({"token": TOKEN, "expires_at": "2000000000"}, id="string-expires_at"),
        pytest.param({"token": TOKEN, "expires_at": None}, id="null-expires_at"),
        pytest.param({"expires_at": 2_000_000_000}, id="missing-token"),
        pytest.param({"token": "", "expires_at": 2_000_000_000}, id="empty-token"),
        pytest.param({"token": "   ", "expires_at": 2_000_000_000}, id="blank-token"),
        pytest.param({"token": 12345, "expires_at": 2_000_000_000}, id="int-token"),
        pytest.param({"token": [TOKEN], "expires_at": 2_000_000_000}, id="list-token"),
        pytest.param({"token": None, "expires_at": 2_000_000_000}, id="null-token"),
        pytest.param({"token": TOKEN, "expires_at": 2_000_000_000, "token_type": "MAC"}, id="not-bearer"),
        pytest.param([TOKEN], id="not-an-object"),
    ],
)
@respx.mock
async def test_malformed_success_bodies_are_token_errors(body: object) -> None:
    route = respx.post(ENDPOINT).respond(200, json=body)
    with pytest.raises(MCPTokenError) as caught:
        await issue()
    assert type(caught.value) is MCPTokenError
    assert "malformed" in str(caught.value)
    assert route.call_count == 1
    assert_no_secrets(caught.value)


@respx.mock
async def test_non_finite_expires_at_is_rejected() -> None:
    respx.post(ENDPOINT).respond(200, content=b'{"token": "' + TOKEN.encode() + b'", "expires_at": NaN}')
    with pytest.raises(MCPTokenError, match="expires_at"):
        await issue()


@respx.mock
async def test_bad_json_is_a_token_error_without_the_body() -> None:
    respx.post(ENDPOINT).respond(200, content=b'{"token": "' + TOKEN.encode() + b'", "expires_at": ')
    with pytest.raises(MCPTokenError, match="not JSON") as caught:
        await issue()
    assert type(caught.value) is MCPTokenError
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert_no_secrets(caught.value)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (428, {"error": "no_refresh_token", "message": "never signed in"}, MCPNoRefreshTokenError),
        (401, {"error": "refresh_rejected", "message": "grant revoked"}, MCPIdentityRefreshError),
        (403, {"error": "policy_denied", "message": "tenant disabled"}, MCPIdentityRefreshError),
        (403, None, MCPIdentityRefreshError),
        (401, {"error": "invalid_client", "message": "bad secret"}, MCPIssuerConfigError),
        (401, {"error": "something_else"}, MCPTokenError),
        (401, None, MCPTokenError),
        (400, {"error": "invalid_request", "message": "audience"}, MCPTokenError),
        (404, {"error": "unknown_user", "message": "no such user"}, MCPTokenError),
        (409, {"error": "conflict"}, MCPTokenError),
        (302, None, MCPTokenError),
        (204, None, MCPTokenError),
    ],
)
@respx.mock
async def test_refusals_map_to_named_errors_and_are_not_retried(
    status: int, body: dict[str, str] | None, expected: type[MCPTokenError]
) -> None:
    route = (
        respx.post(ENDPOINT).respond(status, json=body)
        if body is not None
        else respx.post(ENDPOINT).respond(status, content=b"not json " + TOKEN.encode())
    )
    with pytest.raises(MCPTokenError) as caught:
        await issue()
    assert type(caught.value) is expected
    assert caught.value.status_code == status
    assert caught.value.error_code == (body or {}).get("error")
    assert route.call_count == 1
    assert_no_secrets(caught.value)


@respx.mock
async def test_issuer_message_text_is_never_echoed() -> None:
    respx.post(ENDPOINT).respond(401, json={"error": "refresh_rejected", "message": f"leaked {TOKEN}"})
    with pytest.raises(MCPIdentityRefreshError) as caught:
        await issue()
    assert_no_secrets(caught.value)


@respx.mock
async def test_an_unsafe_error_code_is_dropped() -> None:
    respx.post(ENDPOINT).respond(400, json={"error": TOKEN})
    with pytest.raises(MCPTokenError) as caught:
        await issue()
    assert caught.value.error_code is None
    assert_no_secrets(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@respx.mock
async def test_5xx_is_retried_then_mapped(status: int) -> None:
    route = respx.post(ENDPOINT).respond(status, json={"error": "server_error"})
    with pytest.raises(MCPTokenError) as caught:
        await issue()
    assert type(caught.value) is MCPTokenError
    assert caught.value.retriable
    assert caught.value.status_code == status
    assert route.call_count == 3


@respx.mock
async def test_5xx_then_success_recovers() -> None:
    route = respx.post(ENDPOINT)
    route.side_effect = [
        httpx.Response(503),
        httpx.Response(200, json={"token": TOKEN, "expires_at": 2_000_000_000}),
    ]
    assert (await issue()).token == TOKEN
    assert route.call_count == 2


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("garbage")],
    ids=["connect", "timeout", "protocol"],
)
@respx.mock
async def test_transport_errors_are_retried_then_token_errors(error: Exception) -> None:
    route = respx.post(ENDPOINT).mock(side_effect=error)
    with pytest.raises(MCPTokenError, match="could not reach the issuer") as caught:
        await issue()
    assert type(caught.value) is MCPTokenError
    assert route.call_count == 3
    assert_no_secrets(caught.value)


@respx.mock
async def test_transport_error_then_success_recovers() -> None:
    route = respx.post(ENDPOINT)
    route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(200, json={"token": TOKEN, "expires_at": 2_000_000_000.25}),
    ]
    assert (await issue()).expires_at == 2_000_000_000.25


@respx.mock
async def test_zero_retries_means_one_attempt() -> None:
    route = respx.post(ENDPOINT).respond(500)
    with pytest.raises(MCPTokenError):
        await issue(settings(retries=0))
    assert route.call_count == 1


async def test_unknown_user_type_is_refused_before_any_request() -> None:
    async with EnterpriseTokenClient(settings()) as client:
        with respx.mock(assert_all_called=False) as mock:
            route = mock.post(ENDPOINT)
            with pytest.raises(MCPTokenError, match="user_type"):
                await client.issue_token(
                    tenant_id="t1", user_id="alice", audience=AUDIENCE, user_type="admin"
                )
            assert route.call_count == 0


@pytest.mark.parametrize(
    "overrides",
    [{"issuer_url": "issuer.test"}, {"inner_api_secret": ""}, {"timeout": 0}, {"retries": -1}],
)
def test_bad_settings_are_config_errors(overrides: dict[str, object]) -> None:
    with pytest.raises(MCPIssuerConfigError):
        settings(**overrides)


async def test_settings_and_client_reprs_hide_the_secret() -> None:
    configured = settings()
    assert SECRET not in repr(configured)
    async with EnterpriseTokenClient(configured) as client:
        assert SECRET not in repr(client)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
issue_bodies = json_values | st.fixed_dictionaries(
    {"token": json_values | st.text(min_size=1, max_size=40), "expires_at": json_values},
    optional={"token_type": json_values | st.sampled_from(["Bearer", "bearer", "MAC"])},
)


@hypothesis_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(status=st.sampled_from([200, 200, 200, 400, 401, 403, 404, 428, 500]), body=issue_bodies)
def test_any_answer_is_a_valid_token_or_a_named_error(status: int, body: object) -> None:
    async def scenario() -> None:
        with respx.mock:
            respx.post(ENDPOINT).respond(status, json=body)
            try:
                issued = await issue(settings(retries=0))
            except MCPTokenError as exc:
                assert_no_secrets(exc)
                return
        assert status == 200
        assert isinstance(issued.token, str) and issued.token.strip() == issued.token and issued.token
        assert isinstance(issued.expires_at, float) and math.isfinite(issued.expires_at)

    anyio.run(scenario)


@pytest.mark.parametrize(("status", "retriable"), [(404, False), (400, False), (502, True), (None, True)])
def test_plain_token_errors_are_retriable_only_for_faults(status: int | None, retriable: bool) -> None:
    error = MCPTokenError("refused", status_code=status)
    assert error.retriable is retriable
    assert ("try again" in error.user_message) is retriable


def test_subclasses_keep_their_own_verdict_whatever_the_status() -> None:
    error = MCPIdentityRefreshError("revoked", status_code=401)
    assert error.retriable is False
    assert error.user_message == MCPIdentityRefreshError.user_message
