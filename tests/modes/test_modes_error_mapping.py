"""Unit tests of the HTTP error mapping of the IdP's token exchange (a mock transport, no server)."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

from client_runtime import (
    IdpClientSettings,
    IdpTokenExchange,
    MCPIdentityRefreshError,
    MCPIssuerConfigError,
    MCPTokenError,
)
from client_runtime.oauth_errors import oauth_refusal
from client_runtime.token_exchange import ACCESS_TOKEN_TYPE, ID_JAG_TOKEN_TYPE

pytestmark = pytest.mark.anyio

SETTINGS = IdpClientSettings(
    token_endpoint="http://127.0.0.1:9/token", client_id="host", client_secret="s3cret", backoff=0
)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (401, "invalid_client", MCPIssuerConfigError),
        (400, "invalid_client", MCPIssuerConfigError),
        (400, "unauthorized_client", MCPIssuerConfigError),
        (401, None, MCPIssuerConfigError),
        (400, "invalid_grant", MCPIdentityRefreshError),
        (403, "access_denied", MCPIdentityRefreshError),
        (400, "invalid_target", MCPIdentityRefreshError),
        (400, "invalid_request", MCPTokenError),
        (400, "invalid_scope", MCPTokenError),
    ],
)
def test_oauth_errors_map_to_the_taxonomy(status: int, error: str | None, expected: type) -> None:
    body = {"error": error, "error_description": "the grant of alice@example.com"} if error else {}
    refusal = oauth_refusal(httpx2.Response(status, json=body), party="the IdP")
    assert type(refusal) is expected
    assert refusal.error_code == error and refusal.status_code == status and not refusal.retriable
    assert "alice@example.com" not in str(refusal)  # descriptions are free text: not echoed


def test_an_unsafe_error_code_is_not_echoed() -> None:
    refusal = oauth_refusal(httpx2.Response(400, json={"error": "<script>Bearer eyJ"}), party="the IdP")
    assert type(refusal) is MCPTokenError and refusal.error_code is None and "eyJ" not in str(refusal)


def _client(handler: Callable[[httpx2.Request], httpx2.Response], **overrides: object) -> IdpTokenExchange:
    settings = IdpClientSettings(**{**SETTINGS.__dict__, **overrides})  # type: ignore[arg-type]
    return IdpTokenExchange(settings, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))


async def _exchange(client: IdpTokenExchange, requested: str = ACCESS_TOKEN_TYPE) -> object:
    return await client.exchange(
        "id-token", requested_token_type=requested, resource="http://127.0.0.1:9/mcp"
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (
            b'{"issued_token_type": "' + ACCESS_TOKEN_TYPE.encode() + b'", "token_type": "Bearer"}',
            "access_token",
        ),
        (b'{"access_token": "a b", "issued_token_type": "x", "token_type": "Bearer"}', "access_token"),
        (
            b'{"access_token": "t", "issued_token_type": "urn:other", "token_type": "Bearer"}',
            "issued_token_type",
        ),
        (
            b'{"access_token": "t", "issued_token_type": "'
            + ACCESS_TOKEN_TYPE.encode()
            + b'", "token_type": "N_A"}',
            "Bearer",
        ),
        (
            b'{"access_token": "t", "issued_token_type": "'
            + ACCESS_TOKEN_TYPE.encode()
            + b'", "token_type": "Bearer", "expires_in": "soon"}',
            "expires_in",
        ),
    ],
)
async def test_malformed_answers_are_token_errors(body: bytes, why: str) -> None:
    client = _client(lambda request: httpx2.Response(200, content=body))
    with pytest.raises(MCPTokenError, match=why) as caught:
        await _exchange(client)
    assert type(caught.value) is MCPTokenError


async def test_an_id_jag_answer_is_not_a_bearer_token_and_is_accepted() -> None:
    answer = {
        "access_token": "grant-value",
        "issued_token_type": ID_JAG_TOKEN_TYPE,
        "token_type": "N_A",
        "expires_in": 60,
    }
    client = _client(lambda request: httpx2.Response(200, json=answer))
    exchanged = await _exchange(client, ID_JAG_TOKEN_TYPE)
    assert exchanged.token == "grant-value" and "grant-value" not in repr(exchanged)  # type: ignore[attr-defined]


async def test_5xx_is_retried_then_reported_as_retriable() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(502, json={"error": "server_error"})

    with pytest.raises(MCPTokenError, match="after 3 attempt") as caught:
        await _exchange(_client(handler, retries=2))
    assert len(seen) == 3 and caught.value.retriable and caught.value.error_code == "server_error"


async def test_a_5xx_then_an_answer_recovers() -> None:
    answers = iter(
        [
            httpx2.Response(503),
            httpx2.Response(
                200,
                json={"access_token": "t", "issued_token_type": ACCESS_TOKEN_TYPE, "token_type": "bearer"},
            ),
        ]
    )
    exchanged = await _exchange(_client(lambda request: next(answers), retries=1))
    assert exchanged.token == "t"  # type: ignore[attr-defined]


async def test_a_4xx_is_not_retried_and_a_redirect_is_not_followed() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(307, headers={"location": "http://127.0.0.1:1/steal"})

    with pytest.raises(MCPIssuerConfigError, match="redirect") as caught:
        await _exchange(_client(handler, retries=2))
    assert len(seen) == 1 and not caught.value.retriable


async def test_client_authentication_methods() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(400, json={"error": "invalid_request"})

    for method in ("client_secret_basic", "client_secret_post"):
        with pytest.raises(MCPTokenError):
            await _exchange(_client(handler, auth_method=method))
    basic, post = seen
    assert basic.headers["authorization"].startswith("Basic ") and b"client_secret" not in basic.content
    assert "authorization" not in post.headers and b"client_secret=s3cret" in post.content


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"token_endpoint": "http://idp.example.com/token"}, "allow_insecure_http"),
        ({"token_endpoint": "https://user:pw@idp.example.com/token"}, "credentials"),
        ({"token_endpoint": "idp/token"}, "absolute"),
        ({"client_secret": ""}, "must not be empty"),
        ({"auth_method": "private_key_jwt"}, "auth_method"),
    ],
)
def test_settings_are_checked(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(MCPIssuerConfigError, match=message):
        IdpClientSettings(**{**SETTINGS.__dict__, **overrides})  # type: ignore[arg-type]
    assert "s3cret" not in repr(SETTINGS)
