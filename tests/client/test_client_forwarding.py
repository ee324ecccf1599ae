"""End to end against the real issuer and the real MCP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from client_support import TENANT, Host, RequestLog, Stack, serve_issuer, serve_mcp_server

from client_runtime import (
    IdentityMode,
    IssuedToken,
    MCPIdentityForwardingError,
    MCPIdentityRefreshError,
    MCPIssuerConfigError,
    MCPMissingUserError,
    MCPNoRefreshTokenError,
    MCPProviderConfigError,
    MCPToolInvocationError,
    MCPToolRuntime,
    TokenBroker,
    TokenKey,
)

pytestmark = pytest.mark.anyio


async def test_alice_and_bob_interleaved_and_concurrent_each_get_their_own_identity(
    stack: Stack, host: Host
) -> None:
    alice, bob = stack.new_user("alice"), stack.new_user("bob")
    provider = stack.provider()
    mark = stack.server_log.mark()

    for caller in (alice, bob, alice, bob, bob, alice):
        assert await host.whoami(provider, caller) == caller

    answers: list[tuple[str, str]] = []

    async def call(caller: str) -> None:
        answers.append((caller, await host.whoami(provider, caller)))

    async with anyio.create_task_group() as tg:
        for i in range(24):
            tg.start_soon(call, (alice, bob)[i % 2])
    assert len(answers) == 24
    assert all(caller == seen for caller, seen in answers)

    # Every request the server received carried a token, and only alice's or bob's.
    seen = stack.server_log.since(mark)
    assert seen and all(r.bearer is not None and r.status == 200 for r in seen)
    assert {stack.user_of_token(r.bearer or "") for r in seen} == {alice, bob}
    assert sorted(set(host.issued_for)) == sorted([alice, bob])
    assert len(host.issued_for) == 2


async def test_notes_stay_with_their_owner(stack: Stack, host: Host) -> None:
    alice, bob = stack.new_user("alice"), stack.new_user("bob")
    provider = stack.provider()
    await host.runtime.invoke(
        provider, "add_note", {"text": "alice's secret"}, tenant_id=TENANT, user_id=alice
    )
    bobs = await host.runtime.invoke(provider, "list_notes", {}, tenant_id=TENANT, user_id=bob)
    alices = await host.runtime.invoke(provider, "list_notes", {}, tenant_id=TENANT, user_id=alice)
    assert bobs.structured_content == {"notes": []}
    assert alices.structured_content == {"notes": ["alice's secret"]}


async def test_100_concurrent_calls_for_one_user_cause_one_issue_token_call(stack: Stack, host: Host) -> None:
    alice = stack.new_user("alice")
    provider = stack.provider()
    issuer_mark = stack.issuer_log.mark()
    subs: list[str] = []

    async def call() -> None:
        subs.append(await host.whoami(provider, alice))

    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(call)
    assert subs == [alice] * 100
    assert host.issued_for == [alice]
    issue_calls = [r for r in stack.issuer_log.since(issuer_mark) if r.path.endswith("/issue-token")]
    assert len(issue_calls) == 1


async def test_a_token_near_expiry_is_renewed_before_use(stack: Stack, host: Host) -> None:
    alice = stack.new_user("alice")
    provider = stack.provider()
    now = [0.0]
    broker = TokenBroker(host.token_client, skew=30, clock=lambda: now[0])
    runtime = MCPToolRuntime(broker=broker)
    key = TokenKey(TENANT, alice, "account", provider.server_url)

    await runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=alice)
    first = broker.cached(key)
    assert first is not None
    now[0] = first.expires_at - 31  # still fresh: reused
    mark = stack.server_log.mark()
    await runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=alice)
    assert {r.bearer for r in stack.server_log.since(mark)} == {first.token}
    assert len(host.issued_for) == 1

    now[0] = first.expires_at - 29  # within the skew: renewed before use
    mark = stack.server_log.mark()
    result = await runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=alice)
    renewed = {r.bearer for r in stack.server_log.since(mark)}
    assert len(renewed) == 1 and first.token not in renewed
    assert result.structured_content is not None and stack.user_of(result.structured_content["sub"]) == alice
    assert host.issued_for == [alice, alice]


async def test_revoking_bob_fails_bobs_next_uncached_call_while_alice_keeps_working(
    stack: Stack, host: Host
) -> None:
    alice, bob = stack.new_user("alice"), stack.new_user("bob")
    provider = stack.provider()
    assert await host.whoami(provider, alice) == alice
    assert await host.whoami(provider, bob) == bob

    stack.admin.revoke(TENANT, bob)
    host.broker.invalidate(TokenKey(TENANT, bob, "account", provider.server_url))
    mark = stack.server_log.mark()
    with pytest.raises(MCPIdentityRefreshError) as caught:
        await host.whoami(provider, bob)
    assert caught.value.status_code == 401 and caught.value.error_code == "refresh_rejected"
    assert stack.server_log.since(mark) == []  # refused before the MCP server was contacted

    assert await host.whoami(provider, alice) == alice
    host.broker.invalidate(TokenKey(TENANT, alice, "account", provider.server_url))
    assert await host.whoami(provider, alice) == alice  # and alice gets fresh tokens too
    with pytest.raises(MCPIdentityRefreshError):
        await host.whoami(provider, bob)  # a failure is not cached as success, nor forgotten
    assert host.issued_for == [alice, bob, bob, alice, bob]


async def test_a_user_who_never_signed_in_gets_no_refresh_token_error(stack: Stack, host: Host) -> None:
    carol = stack.new_user("carol", grant=False)
    with pytest.raises(MCPNoRefreshTokenError):
        await host.whoami(stack.provider(), carol)


@pytest.mark.parametrize("user_id", [None, ""])
@pytest.mark.parametrize("mode", [IdentityMode.IDP_TOKEN, IdentityMode.END_USER_CREDENTIAL])
async def test_forwarding_without_a_user_fails_without_contacting_anyone(
    stack: Stack, host: Host, user_id: str | None, mode: IdentityMode
) -> None:
    issuer_mark, server_mark = stack.issuer_log.mark(), stack.server_log.mark()
    with pytest.raises(MCPMissingUserError):
        await host.whoami(stack.provider(identity_mode=mode), user_id)
    assert stack.issuer_log.since(issuer_mark) == []
    assert stack.server_log.since(server_mark) == []
    assert host.issued_for == []


async def test_enterprise_disabled_acts_as_off_and_never_calls_the_issuer(stack: Stack, host: Host) -> None:
    alice = stack.new_user("alice")
    static = "platform-static-key"
    provider = stack.provider(enterprise_enabled=False, static_headers={"Authorization": f"Bearer {static}"})
    mark = stack.server_log.mark()
    with pytest.raises(MCPToolInvocationError, match="HTTP 401"):
        await host.whoami(provider, alice)
    assert host.issued_for == []
    seen = stack.server_log.since(mark)
    assert seen and {r.bearer for r in seen} == {static}


async def test_a_custom_token_header_keeps_the_static_authorization(stack: Stack, host: Host) -> None:
    alice = stack.new_user("alice")
    # The platform's own credential for this server: a service identity the server accepts.
    service_token = stack.admin.mint(
        {"sub": "platform-service", "aud": stack.server_url, "tenant_id": TENANT}
    )
    provider = stack.provider(
        token_header="X-Dify-SSO-Token", static_headers={"Authorization": f"Bearer {service_token}"}
    )
    mark = stack.server_log.mark()
    assert await host.whoami(provider, alice) == "platform-service"
    seen = stack.server_log.since(mark)
    assert seen and all(r.bearer == service_token for r in seen)
    assert {stack.user_of_token(r.headers["x-dify-sso-token"]) for r in seen} == {alice}


@pytest.fixture(scope="module")
def foreign_server(stack: Stack) -> Iterator[tuple[str, RequestLog]]:
    """An MCP server that trusts another issuer, so it answers every token of ours with 401."""
    other_issuer, _ = serve_issuer("other-secret", "other-admin-secret")
    server, log, url = serve_mcp_server(other_issuer.url)
    try:
        yield url, log
    finally:
        server.stop()
        other_issuer.stop()


async def test_a_server_401_is_never_followed_by_another_identity(
    stack: Stack, host: Host, foreign_server: tuple[str, RequestLog]
) -> None:
    url, log = foreign_server
    alice, bob = stack.new_user("alice"), stack.new_user("bob")
    provider = stack.provider(server_url=url, static_headers={"Authorization": "Bearer platform-static-key"})
    mark = log.mark()
    with pytest.raises(MCPIdentityForwardingError) as caught:
        await host.whoami(provider, alice)
    assert caught.value.status_code == 401
    seen = log.since(mark)
    assert seen and all(r.status == 401 for r in seen)
    # Every request carried alice's one token: no static key, no anonymous retry, no other user.
    tokens = {r.bearer for r in seen}
    assert len(tokens) == 1 and stack.user_of_token(next(iter(tokens)) or "") == alice
    assert host.issued_for == [alice]
    # The rejected token was evicted, so the next call asks the issuer again.
    assert host.broker.cached(TokenKey(TENANT, alice, "account", url)) is None

    # Concurrent rejections for two users: each request still carries only its own caller's token.
    mark = log.mark()

    async def call(user: str) -> None:
        with pytest.raises(MCPIdentityForwardingError):
            await host.whoami(provider, user)

    async with anyio.create_task_group() as tg:
        for user in (alice, bob, alice, bob):
            tg.start_soon(call, user)
    seen = log.since(mark)
    assert {stack.user_of_token(r.bearer or "") for r in seen} == {alice, bob}
    assert all(r.bearer is not None and r.bearer != "platform-static-key" for r in seen)


async def test_each_invocation_gets_its_own_http_client(stack: Stack, host: Host) -> None:
    alice, bob = stack.new_user("alice"), stack.new_user("bob")
    created: list[object] = []

    def factory(**kwargs: object) -> object:
        import httpx2

        client = httpx2.AsyncClient(**kwargs)  # type: ignore[arg-type]
        created.append(client)
        return client

    runtime = MCPToolRuntime(broker=host.broker, http_client_factory=factory)  # type: ignore[arg-type]
    provider = stack.provider()
    for user in (alice, bob, alice):
        await runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=user)
    assert len(created) == 3 and len({id(c) for c in created}) == 3
    assert all(c.is_closed for c in created)


async def test_list_tools_as_a_user(stack: Stack, host: Host) -> None:
    alice = stack.new_user("alice")
    tools = await host.runtime.list_tools(stack.provider(), tenant_id=TENANT, user_id=alice)
    assert {t.name for t in tools} >= {"whoami", "add_note", "list_notes", "echo"}


async def test_an_unreachable_server_is_a_tool_invocation_error(stack: Stack, host: Host) -> None:
    alice = stack.new_user("alice")
    with pytest.raises(MCPToolInvocationError):
        await host.whoami(stack.provider(server_url="http://127.0.0.1:1/mcp"), alice)


def test_issued_token_repr_hides_the_token() -> None:
    assert "abc.def.ghi" not in repr(IssuedToken(token="abc.def.ghi", expires_at=1.0))


@pytest.mark.parametrize(
    ("runtime_kwargs", "call_kwargs", "expected"),
    [
        ({}, {}, MCPIssuerConfigError),  # idp_token mode but the runtime has no broker
        (None, {"tenant_id": "other-tenant"}, MCPProviderConfigError),
        (None, {"user_type": "admin"}, MCPProviderConfigError),
    ],
)
async def test_misconfigured_calls_are_refused_before_any_io(
    stack: Stack,
    host: Host,
    runtime_kwargs: dict[str, object] | None,
    call_kwargs: dict[str, str],
    expected: type[Exception],
) -> None:
    alice = stack.new_user("alice")
    runtime = host.runtime if runtime_kwargs is None else MCPToolRuntime(**runtime_kwargs)  # type: ignore[arg-type]
    issuer_mark, server_mark = stack.issuer_log.mark(), stack.server_log.mark()
    kwargs: dict[str, str] = {"tenant_id": TENANT, "user_id": alice, **call_kwargs}
    with pytest.raises(expected):
        await runtime.invoke(stack.provider(), "whoami", {}, **kwargs)  # type: ignore[arg-type]
    assert stack.issuer_log.since(issuer_mark) == []
    assert stack.server_log.since(server_mark) == []
