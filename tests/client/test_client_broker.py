"""TokenBroker: caching until expires_at - skew, single flight, LRU bound, invalidation."""

from __future__ import annotations

import anyio
import pytest

from client_runtime import IssuedToken, MCPIdentityRefreshError, MCPTokenError, TokenBroker, TokenKey

pytestmark = pytest.mark.anyio

AUD = "http://127.0.0.1:9/mcp"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedIssuer:
    """A token source that records calls; optionally holds each call until released."""

    def __init__(self, clock: Clock, lifetime: float = 300.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls: list[TokenKey] = []
        self.gate: anyio.Event | None = None
        self.entered = anyio.Event()
        self.fail_with: Exception | None = None

    async def issue_token(
        self, *, tenant_id: str, user_id: str, audience: str, user_type: str = "account"
    ) -> IssuedToken:
        self.calls.append(TokenKey(tenant_id, user_id, user_type, audience))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return IssuedToken(token=f"tok-{user_id}-{len(self.calls)}", expires_at=self.clock() + self.lifetime)


async def get(broker: TokenBroker, user: str = "alice", **kw: str) -> IssuedToken:
    return await broker.get(
        tenant_id="t1",
        user_id=user,
        audience=kw.get("audience", AUD),
        **{k: v for k, v in kw.items() if k != "audience"},
    )


async def test_fresh_token_is_served_from_cache() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock)
    broker = TokenBroker(issuer, skew=30, clock=clock)
    first = await get(broker)
    clock.now += 200
    assert await get(broker) is first
    assert len(issuer.calls) == 1


async def test_token_within_skew_of_expiry_is_renewed_before_use() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock, lifetime=300)
    broker = TokenBroker(issuer, skew=30, clock=clock)
    first = await get(broker)
    clock.now += 270  # exactly expires_at - skew: no longer fresh
    second = await get(broker)
    assert second.token != first.token
    assert second.expires_at > first.expires_at
    assert len(issuer.calls) == 2


async def test_token_shorter_lived_than_skew_is_used_once_but_not_cached() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock, lifetime=10)
    broker = TokenBroker(issuer, skew=30, clock=clock)
    await get(broker)
    await get(broker)
    assert len(issuer.calls) == 2
    assert len(broker) == 0


async def test_keys_differ_by_tenant_user_type_and_audience() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock)
    broker = TokenBroker(issuer, clock=clock)
    await get(broker, "alice")
    await get(broker, "bob")
    await get(broker, "alice", user_type="end_user")
    await get(broker, "alice", audience="http://127.0.0.1:10/mcp")
    await broker.get(tenant_id="t2", user_id="alice", audience=AUD)
    await get(broker, "alice")
    assert len(issuer.calls) == 5
    assert len(set(issuer.calls)) == 5


async def test_concurrent_gets_share_one_issue_call() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock)
    issuer.gate = anyio.Event()
    broker = TokenBroker(issuer, clock=clock)
    results: list[IssuedToken] = []

    async def one() -> None:
        results.append(await get(broker))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(one)
        await issuer.entered.wait()
        issuer.gate.set()
    assert len(issuer.calls) == 1
    assert len(results) == 50
    assert {r.token for r in results} == {"tok-alice-1"}


async def test_failure_reaches_every_waiter_and_is_not_cached() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock)
    issuer.gate = anyio.Event()
    issuer.fail_with = MCPIdentityRefreshError("grant revoked", status_code=401)
    broker = TokenBroker(issuer, clock=clock)
    errors: list[BaseException] = []

    async def one() -> None:
        try:
            await get(broker)
        except MCPTokenError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(one)
        await issuer.entered.wait()
        issuer.gate.set()
    assert len(issuer.calls) == 1
    assert len(errors) == 10
    assert all(isinstance(e, MCPIdentityRefreshError) for e in errors)

    issuer.gate = None
    issuer.fail_with = None
    assert (await get(broker)).token == "tok-alice-2"
    assert len(issuer.calls) == 2


async def test_cancelled_fetcher_hands_over_to_a_waiter() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock)
    issuer.gate = anyio.Event()
    broker = TokenBroker(issuer, clock=clock)
    waiter_result: list[IssuedToken] = []

    async def waiter() -> None:
        waiter_result.append(await get(broker))

    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as leader:
            leader.start_soon(get, broker)
            await issuer.entered.wait()
            issuer.entered = anyio.Event()
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()  # the waiter now waits on the leader's flight
            leader.cancel_scope.cancel()
        await issuer.entered.wait()  # the waiter took over and called the issuer itself
        issuer.gate.set()
    assert len(issuer.calls) == 2
    assert waiter_result[0].token == "tok-alice-2"


async def test_size_is_bounded_least_recently_used_first() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock)
    broker = TokenBroker(issuer, max_entries=2, clock=clock)
    await get(broker, "a")
    await get(broker, "b")
    await get(broker, "a")  # a is now the most recently used
    await get(broker, "c")  # evicts b
    assert len(broker) == 2
    assert broker.cached(TokenKey("t1", "b", "account", AUD)) is None
    assert broker.cached(TokenKey("t1", "a", "account", AUD)) is not None
    await get(broker, "b")
    assert [k.user_id for k in issuer.calls] == ["a", "b", "c", "b"]


async def test_invalidate_forces_a_new_token() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock)
    broker = TokenBroker(issuer, clock=clock)
    first = await get(broker)
    broker.invalidate(TokenKey("t1", "alice", "account", AUD))
    assert (await get(broker)).token != first.token


async def test_invalidate_with_a_stale_token_keeps_the_fresher_one() -> None:
    clock = Clock()
    issuer = ScriptedIssuer(clock)
    broker = TokenBroker(issuer, clock=clock)
    key = TokenKey("t1", "alice", "account", AUD)
    stale = await get(broker)
    broker.invalidate(key, stale)
    fresher = await get(broker)
    broker.invalidate(key, stale)
    assert broker.cached(key) is fresher


def test_bad_bounds_are_rejected() -> None:
    with pytest.raises(ValueError):
        TokenBroker(ScriptedIssuer(Clock()), max_entries=0)
    with pytest.raises(ValueError):
        TokenBroker(ScriptedIssuer(Clock()), skew=-1)
