"""ForwardedIdentityAuth on every request of a session, and the end_user_credential mode, end to end."""

from __future__ import annotations

import asyncio
import contextlib

import anyio
import httpx2
import pytest
from client_support import TENANT, Host, Seen, Stack
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from client_runtime import (
    CredentialType,
    Database,
    DataCipher,
    EndUserCredentialStore,
    ForwardedIdentityAuth,
    IdentityMode,
    MCPCredentialRequiredError,
    MCPIdentityForwardingError,
    MCPToolInvocationError,
    MCPToolRuntime,
)

pytestmark = pytest.mark.anyio


async def test_auth_puts_bearer_in_authorization_and_raw_token_in_a_custom_header() -> None:
    seen: list[httpx2.Headers] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers)
        return httpx2.Response(200)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        await http.get("http://mcp.test/", auth=ForwardedIdentityAuth("tok-1"))
        await http.get(
            "http://mcp.test/",
            headers={"Authorization": "Bearer static"},
            auth=ForwardedIdentityAuth("tok-2", header="X-Dify-SSO-Token"),
        )
        await http.get(
            "http://mcp.test/",
            headers={"Authorization": "Bearer static"},
            auth=ForwardedIdentityAuth("tok-3"),
        )
    assert seen[0]["authorization"] == "Bearer tok-1"
    assert (seen[1]["x-dify-sso-token"], seen[1]["authorization"]) == ("tok-2", "Bearer static")
    assert seen[2].get_list("authorization") == ["Bearer tok-3"]
    assert "tok-1" not in repr(ForwardedIdentityAuth("tok-1"))


async def test_every_request_of_a_legacy_session_carries_the_token(stack: Stack) -> None:
    alice = stack.new_user("alice")
    token = stack.admin.issue_token(TENANT, alice, stack.server_url)["token"]
    mark = stack.server_log.mark()

    def stream_opened(log: list[Seen]) -> bool:
        return any(r.method == "GET" for r in log[mark:])

    async with (
        httpx2.AsyncClient(auth=ForwardedIdentityAuth(token)) as http,
        Client(streamable_http_client(stack.server_url, http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool("whoami", {})
        # The GET event stream is opened in the background; let it arrive before the session closes.
        assert await anyio.to_thread.run_sync(stack.server_log.wait_for, stream_opened)
    assert result.structured_content is not None and stack.user_of(result.structured_content["sub"]) == alice
    seen = stack.server_log.since(mark)
    # The POSTs, the GET event stream and the closing DELETE.
    assert {r.method for r in seen} == {"POST", "GET", "DELETE"}
    assert all(r.bearer == token for r in seen)


async def test_runtime_legacy_sessions_carry_only_their_own_users_token(stack: Stack, host: Host) -> None:
    alice, bob = stack.new_user("alice"), stack.new_user("bob")
    runtime = MCPToolRuntime(broker=host.broker, protocol_mode="legacy")
    provider = stack.provider()
    for user in (alice, bob):
        mark = stack.server_log.mark()
        result = await runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=user)
        assert (
            result.structured_content is not None and stack.user_of(result.structured_content["sub"]) == user
        )
        seen = stack.server_log.since(mark)
        # The closing DELETE is awaited before invoke returns; the GET stream may not have started.
        assert {"POST", "DELETE"} <= {r.method for r in seen}
        assert {stack.user_of_token(r.bearer or "") for r in seen} == {user}


def test_an_unknown_protocol_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        MCPToolRuntime(protocol_mode="2019-01-01")


@pytest.fixture
def credentials() -> EndUserCredentialStore:
    return EndUserCredentialStore(Database(), DataCipher(bytes(32)))


async def test_oauth2_end_user_credential_is_sent_as_bearer(
    stack: Stack, credentials: EndUserCredentialStore
) -> None:
    # The end user's own OAuth2 access token for this server (minted here by the test issuer).
    access_token = stack.admin.mint({"sub": "eu-7", "aud": stack.server_url, "tenant_id": TENANT})
    credentials.create(
        "acme",
        "eu-7",
        "notes",
        {"access_token": access_token},
        server_url=stack.server_url,
        credential_type="oauth2",
    )
    runtime = MCPToolRuntime(credentials=credentials)
    provider = stack.provider(identity_mode=IdentityMode.END_USER_CREDENTIAL, token_header="X-Api-Key")
    mark = stack.server_log.mark()
    result = await runtime.invoke(
        provider, "whoami", {}, tenant_id=TENANT, user_id="eu-7", user_type="end_user"
    )
    assert result.structured_content is not None and result.structured_content["sub"] == "eu-7"
    assert {r.bearer for r in stack.server_log.since(mark)} == {access_token}


async def test_api_key_credential_goes_in_the_providers_header(
    stack: Stack, credentials: EndUserCredentialStore
) -> None:
    credentials.create("acme", "eu-8", "notes", {"api_key": "eu-8-api-key"}, server_url=stack.server_url)
    runtime = MCPToolRuntime(credentials=credentials)
    provider = stack.provider(identity_mode=IdentityMode.END_USER_CREDENTIAL, token_header="X-Api-Key")
    mark = stack.server_log.mark()
    # The reference server only accepts Bearer JWTs, so it refuses; what matters is what was sent.
    with pytest.raises(MCPIdentityForwardingError):
        await runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id="eu-8")
    seen = stack.server_log.since(mark)
    assert seen and all(r.headers.get("x-api-key") == "eu-8-api-key" for r in seen)
    assert all("authorization" not in r.headers for r in seen)


@pytest.mark.parametrize("expired", [False, True])
async def test_no_usable_credential_asks_the_user_to_connect_without_contacting_anyone(
    stack: Stack, credentials: EndUserCredentialStore, expired: bool
) -> None:
    if expired:
        credentials.create(
            "acme", "eu-9", "notes", {"api_key": "old"}, server_url=stack.server_url, expires_at=1
        )
    credentials.create("acme", "someone-else", "notes", {"api_key": "theirs"}, server_url=stack.server_url)
    runtime = MCPToolRuntime(credentials=credentials)
    provider = stack.provider(identity_mode=IdentityMode.END_USER_CREDENTIAL)
    mark = stack.server_log.mark()
    with pytest.raises(MCPCredentialRequiredError) as caught:
        await runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id="eu-9")
    assert caught.value.reason == ("expired" if expired else "missing")
    assert stack.server_log.since(mark) == []


async def test_a_credential_id_of_another_user_is_refused(
    stack: Stack, credentials: EndUserCredentialStore
) -> None:
    theirs = credentials.create(
        "acme", "someone-else", "notes", {"api_key": "theirs"}, server_url=stack.server_url
    )
    runtime = MCPToolRuntime(credentials=credentials)
    provider = stack.provider(identity_mode=IdentityMode.END_USER_CREDENTIAL)
    mark = stack.server_log.mark()
    with pytest.raises(MCPCredentialRequiredError):
        await runtime.invoke(
            provider, "whoami", {}, tenant_id=TENANT, user_id="eu-10", credential_id=theirs.id
        )
    assert stack.server_log.since(mark) == []


def test_credential_types_are_the_two_of_the_design() -> None:
    assert [t.value for t in CredentialType] == ["api-key", "oauth2"]


@pytest.mark.parametrize("session_reuse", [True, False])
async def test_a_call_cancelled_mid_flight_is_cancelled_not_a_failed_call(
    stack: Stack, host: Host, monkeypatch: pytest.MonkeyPatch, session_reuse: bool
) -> None:
    # What the mcp SDK does when its task is cancelled mid-call: its torn-down streams raise.
    started = asyncio.Event()

    async def call_tool(self: Client, *args: object, **kwargs: object) -> object:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise anyio.BrokenResourceError from None
        raise AssertionError("unreachable")

    monkeypatch.setattr(Client, "call_tool", call_tool)
    provider = stack.provider(session_reuse=session_reuse)
    call = asyncio.create_task(
        host.runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=stack.new_user("carol"))
    )
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


def _hang_until_cancelled_then_break(monkeypatch: pytest.MonkeyPatch) -> None:
    async def call_tool(self: Client, *args: object, **kwargs: object) -> object:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise anyio.BrokenResourceError from None  # as the SDK's torn-down streams do
        raise AssertionError("unreachable")

    monkeypatch.setattr(Client, "call_tool", call_tool)


@pytest.mark.parametrize("session_reuse", [True, False])
async def test_a_callers_anyio_timeout_around_a_call_works_as_anyio_says(
    stack: Stack, host: Host, monkeypatch: pytest.MonkeyPatch, session_reuse: bool
) -> None:
    _hang_until_cancelled_then_break(monkeypatch)
    provider = stack.provider(session_reuse=session_reuse)
    user = stack.new_user("dave")
    with anyio.move_on_after(0.2) as scope:
        await host.runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=user)
    assert scope.cancelled_caught  # the scope absorbed its cancellation: the caller goes on
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.2):
            await host.runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=user)


async def test_a_real_failure_stays_one_in_a_task_that_once_swallowed_a_cancellation(
    stack: Stack, host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def call_tool(self: Client, *args: object, **kwargs: object) -> object:
        raise anyio.BrokenResourceError  # the server went away

    monkeypatch.setattr(Client, "call_tool", call_tool)

    async def caller() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):  # swallowed, as older cleanup code does
            await asyncio.sleep(0)
        assert task.cancelling() == 1
        await host.runtime.invoke(
            stack.provider(), "whoami", {}, tenant_id=TENANT, user_id=stack.new_user("gil")
        )

    with pytest.raises(MCPToolInvocationError):
        await asyncio.create_task(caller())
