"""Session reuse: one session per user and identity, bounded, closed on rotation, refusal, idle and aclose."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest
from client_support import TENANT, Host, RequestLog, Seen, Stack

import fake_enterprise
import fake_mcp_server
from client_runtime import (
    MCPIdentityForwardingError,
    MCPToolRuntime,
    SessionPoolSettings,
    TokenBroker,
    TokenKey,
)
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread

pytestmark = pytest.mark.anyio

SESSION_ID = "mcp-session-id"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def open_runtime(host: Host, **kwargs: object) -> AsyncIterator[MCPToolRuntime]:
    """An open runtime speaking the legacy protocol, whose sessions have ids the server log shows."""
    async with MCPToolRuntime(broker=host.broker, protocol_mode="legacy", **kwargs) as runtime:  # type: ignore[arg-type]
        yield runtime


async def whoami(runtime: MCPToolRuntime, stack: Stack, user_id: str, **provider: object) -> str:
    result = await runtime.invoke(stack.provider(**provider), "whoami", {}, tenant_id=TENANT, user_id=user_id)
    assert not result.is_error and result.structured_content is not None
    return str(result.structured_content["preferred_username"])


def sessions_by_user(stack: Stack, seen: list[Seen]) -> dict[str, set[str]]:
    """Each user (by the token's sub) and the session ids their requests carried."""
    users: dict[str, set[str]] = {}
    for request in seen:
        if SESSION_ID in request.headers:
            user = stack.user_of_token(request.bearer or "")
            users.setdefault(user, set()).add(request.headers[SESSION_ID])
    return users


def deleted(log: RequestLog, mark: int, token: str) -> bool:
    """Wait (off the event loop) until the server saw a session closed with `token`."""

    def arrived(seen: list[Seen]) -> bool:
        return any(r.method == "DELETE" and r.bearer == token for r in seen[mark:])

    return log.wait_for(arrived)


async def test_a_warm_call_of_an_open_runtime_is_one_http_request(stack: Stack, host: Host) -> None:
    alice = stack.new_user("alice")
    provider = stack.provider()
    assert await host.whoami(provider, alice) == alice
    mark = stack.server_log.mark()
    assert await host.whoami(provider, alice) == alice
    seen = stack.server_log.since(mark)
    assert [(r.method, r.status) for r in seen] == [("POST", 200)]
    assert host.runtime.open_sessions == 1


async def test_users_never_share_a_session_and_one_users_concurrent_calls_share_one(
    stack: Stack, host: Host
) -> None:
    alice, bob = stack.new_user("alice"), stack.new_user("bob")
    mark = stack.server_log.mark()
    answers: list[tuple[str, str]] = []
    async with open_runtime(host) as runtime:

        async def call(user: str) -> None:
            answers.append((user, await whoami(runtime, stack, user)))

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(call, (alice, bob)[i % 2])
        assert runtime.open_sessions == 2
    assert len(answers) == 30 and all(asked == answered for asked, answered in answers)
    seen = stack.server_log.since(mark)
    users = sessions_by_user(stack, seen)
    # One session each, opened once (one initialize), and no session id ever seen with two users.
    assert {user: len(ids) for user, ids in users.items()} == {alice: 1, bob: 1}
    assert users[alice].isdisjoint(users[bob])
    initializes = [r for r in seen if r.method == "POST" and SESSION_ID not in r.headers]
    assert sorted(stack.user_of_token(r.bearer or "") for r in initializes) == sorted([alice, bob])


async def test_a_rotated_token_closes_the_old_session(stack: Stack, host: Host) -> None:
    alice = stack.new_user("alice")
    clock = FakeClock()
    broker = TokenBroker(host.token_client, skew=30, clock=clock)
    key = TokenKey(TENANT, alice, "account", stack.server_url)
    async with MCPToolRuntime(broker=broker, protocol_mode="legacy") as runtime:
        await whoami(runtime, stack, alice)
        first = broker.cached(key)
        assert first is not None
        clock.now = first.expires_at - 29  # within the skew: the broker mints a new token
        mark = stack.server_log.mark()
        await whoami(runtime, stack, alice)
        assert await anyio.to_thread.run_sync(deleted, stack.server_log, mark, first.token)
        assert runtime.open_sessions == 1
        # The new session carried only the new token; the old one sent nothing but its DELETE.
        seen = stack.server_log.since(mark)
        new_tokens = {r.bearer for r in seen if r.method != "DELETE"}
        assert len(new_tokens) == 1 and first.token not in new_tokens
        assert [r.method for r in seen if r.bearer == first.token] == ["DELETE"]
        assert len(sessions_by_user(stack, seen)[alice]) == 2


async def test_an_idle_session_is_closed_and_a_new_one_opened(stack: Stack, host: Host) -> None:
    alice = stack.new_user("alice")
    clock = FakeClock()
    token = (await host.broker.get(tenant_id=TENANT, user_id=alice, audience=stack.server_url)).token
    async with open_runtime(host, session_pool=SessionPoolSettings(idle_timeout=60), clock=clock) as runtime:
        mark = stack.server_log.mark()
        await whoami(runtime, stack, alice)
        clock.now += 59
        await whoami(runtime, stack, alice)
        assert len(sessions_by_user(stack, stack.server_log.since(mark))[alice]) == 1
        clock.now += 60
        await whoami(runtime, stack, alice)
        assert await anyio.to_thread.run_sync(deleted, stack.server_log, mark, token)
        assert len(sessions_by_user(stack, stack.server_log.since(mark))[alice]) == 2
        assert runtime.open_sessions == 1


async def test_the_bound_closes_the_least_recently_used_session(stack: Stack, host: Host) -> None:
    users = [stack.new_user(name) for name in ("alice", "bob", "carol")]
    tokens = [
        (await host.broker.get(tenant_id=TENANT, user_id=user, audience=stack.server_url)).token
        for user in users
    ]
    async with open_runtime(host, session_pool=SessionPoolSettings(max_sessions=2)) as runtime:
        mark = stack.server_log.mark()
        for user in (users[0], users[1], users[0], users[2]):
            await whoami(runtime, stack, user)
        assert runtime.open_sessions == 2
        # bob's session was the least recently used when carol's opened.
        assert await anyio.to_thread.run_sync(deleted, stack.server_log, mark, tokens[1])
        mark = stack.server_log.mark()
        await whoami(runtime, stack, users[0])
        assert [r.method for r in stack.server_log.since(mark)] == ["POST"]


async def test_aclose_closes_every_session(stack: Stack, host: Host) -> None:
    alice, bob = stack.new_user("alice"), stack.new_user("bob")
    async with open_runtime(host) as runtime:
        await whoami(runtime, stack, alice)
        await whoami(runtime, stack, bob)
        assert runtime.open_sessions == 2
        mark = stack.server_log.mark()
        await runtime.aclose()
        assert runtime.open_sessions == 0
        # aclose waits for the sessions to be closed, so both DELETEs have arrived.
        closed = [r for r in stack.server_log.since(mark) if r.method == "DELETE"]
        assert sorted(stack.user_of_token(r.bearer or "") for r in closed) == sorted([alice, bob])
        # The runtime stays usable: the next call opens a new session.
        assert await whoami(runtime, stack, alice) == alice


async def test_a_provider_without_session_reuse_opens_a_fresh_session_per_call(
    stack: Stack, host: Host
) -> None:
    alice = stack.new_user("alice")
    async with open_runtime(host) as runtime:
        mark = stack.server_log.mark()
        for _ in range(2):
            await whoami(runtime, stack, alice, session_reuse=False)
        assert runtime.open_sessions == 0
    seen = stack.server_log.since(mark)
    assert len(sessions_by_user(stack, seen)[alice]) == 2
    assert [r.method for r in seen].count("DELETE") == 2


@dataclass
class RestartableServer:
    """An MCP server that can be restarted on its port, trusting the same or another issuer."""

    issuer_url: str
    served: ServedApp
    log: RequestLog
    url: str

    @classmethod
    def start(cls, issuer_url: str, port: int = 0) -> RestartableServer:
        sock = bind_loopback(port=port)
        url = f"{socket_url(sock)}/mcp"
        settings = fake_mcp_server.ServerSettings(issuer_url=issuer_url, resource_url=url)
        log = RequestLog(fake_mcp_server.create_app(settings))
        return cls(issuer_url, start_in_thread(log, sock), log, url)

    def restart(self, issuer_url: str | None = None) -> None:
        self.served.stop()
        again = RestartableServer.start(issuer_url or self.issuer_url, self.served.port)
        self.issuer_url, self.served, self.log = again.issuer_url, again.served, again.log


@pytest.fixture
def restartable(stack: Stack) -> Iterator[RestartableServer]:
    server = RestartableServer.start(stack.issuer_url)
    try:
        yield server
    finally:
        server.served.stop()


async def test_a_session_the_restarted_server_forgot_is_reopened_once_as_the_same_user(
    stack: Stack, host: Host, restartable: RestartableServer
) -> None:
    alice = stack.new_user("alice")
    async with open_runtime(host) as runtime:
        assert await whoami(runtime, stack, alice, server_url=restartable.url) == alice
        await anyio.to_thread.run_sync(restartable.restart)
        assert await whoami(runtime, stack, alice, server_url=restartable.url) == alice
        assert runtime.open_sessions == 1
    seen = restartable.log.since(0)
    assert seen[0].method == "POST" and seen[0].status == 404 and SESSION_ID in seen[0].headers
    assert {stack.user_of_token(r.bearer or "") for r in seen} == {alice}
    # One 404 for the call (then reopened), and one for closing the forgotten session.
    assert [(r.method, r.status) for r in seen if r.status == 404] == [("POST", 404), ("DELETE", 404)]


async def test_a_refusal_on_a_reused_session_closes_it_and_evicts_the_token(
    stack: Stack, host: Host, restartable: RestartableServer
) -> None:
    alice = stack.new_user("alice")
    sock = bind_loopback()
    settings = fake_enterprise.IssuerSettings(socket_url(sock), "another-issuer", "another-issuer-admin")
    other_issuer = start_in_thread(fake_enterprise.create_app(settings), sock)
    try:
        async with open_runtime(host) as runtime:
            await whoami(runtime, stack, alice, server_url=restartable.url)
            # Back on the same port, now trusting another issuer: alice's token is refused.
            await anyio.to_thread.run_sync(restartable.restart, other_issuer.url)
            with pytest.raises(MCPIdentityForwardingError) as caught:
                await whoami(runtime, stack, alice, server_url=restartable.url)
            assert runtime.open_sessions == 0
    finally:
        other_issuer.stop()
    assert caught.value.status_code == 401 and caught.value.error == "invalid_token"
    assert host.broker.cached(TokenKey(TENANT, alice, "account", restartable.url)) is None
    # Refused once and never retried, not as anyone else nor on a reopened session; then closed.
    seen = restartable.log.since(0)
    assert [(r.method, r.status) for r in seen] == [("POST", 401), ("DELETE", 401)]
    assert {stack.user_of_token(r.bearer or "") for r in seen} == {alice}


def test_session_pool_settings_refuse_nonsense() -> None:
    for bad in ({"max_sessions": -1}, {"idle_timeout": 0}, {"sweep_interval": 0}):
        with pytest.raises(ValueError):
            SessionPoolSettings(**bad)  # type: ignore[arg-type]
