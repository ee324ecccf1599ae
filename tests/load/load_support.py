"""Helpers for the load and fault tests: runtimes wired to a real issuer, and outcome bookkeeping."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IdentityMode,
    MCPProvider,
    MCPToolRuntime,
    TokenBroker,
)
from fake_enterprise import AdminClient

TENANT = "acme"
ISSUE_TOKEN_PATH = "/inner/api/mcp/issue-token"
# A skew larger than any token's lifetime: no token is ever fresh, so every call asks the issuer.
NEVER_CACHE_SKEW = 10**9
_EVERY = object()


def provider_for(server_url: str) -> MCPProvider:
    return MCPProvider(
        provider_id="load", tenant_id=TENANT, server_url=server_url, identity_mode=IdentityMode.IDP_TOKEN
    )


def create_users(admin: AdminClient, user_ids: Iterable[str], *, workers: int = 16) -> dict[str, str]:
    """Create users with SSO grants, several at a time (each admin call is a round trip).

    Returns each user's opaque subject, the `sub` the server sees for them.
    """

    def create(user_id: str) -> tuple[str, str]:
        created = admin.create_user(TENANT, user_id, email=f"{user_id}@example.com", name=user_id.title())
        admin.grant(TENANT, user_id)
        return user_id, str(created["sub"])

    with ThreadPoolExecutor(workers) as pool:
        return dict(pool.map(create, user_ids))


@dataclass
class IssueTokenCounter:
    """Counts the issue-token requests an httpx client sends (each retry is one more)."""

    requests: int = 0

    async def __call__(self, request: httpx.Request) -> None:
        if request.url.path == ISSUE_TOKEN_PATH:
            self.requests += 1


@dataclass
class Host:
    runtime: MCPToolRuntime
    broker: TokenBroker
    token_client: EnterpriseTokenClient
    counter: IssueTokenCounter


@asynccontextmanager
async def open_host(
    issuer_url: str,
    secret: str,
    *,
    cache: bool = True,
    issuer_timeout: float = 5.0,
    retries: int = 2,
    backoff: float = 0.05,
    runtime_timeout: float = 30.0,
) -> AsyncIterator[Host]:
    """A runtime whose token client counts its issue-token requests; `cache=False` mints per call."""
    settings = EnterpriseTokenSettings(
        issuer_url=issuer_url,
        inner_api_secret=secret,
        timeout=issuer_timeout,
        retries=retries,
        backoff=backoff,
    )
    counter = IssueTokenCounter()
    async with (
        httpx.AsyncClient(event_hooks={"request": [counter]}) as http,
        EnterpriseTokenClient(settings, http_client=http) as token_client,
    ):
        broker = TokenBroker(token_client) if cache else TokenBroker(token_client, skew=NEVER_CACHE_SKEW)
        # Open, so calls reuse each user's session (and a minted-per-call token replaces it).
        async with MCPToolRuntime(broker=broker, timeout=runtime_timeout) as runtime:
            yield Host(runtime, broker, token_client, counter)


async def call_tool(
    runtime: MCPToolRuntime,
    provider: MCPProvider,
    user_id: str,
    tool: str,
    arguments: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The tool's structured result; a tool-level error fails the test."""
    result = await runtime.invoke(provider, tool, arguments, tenant_id=TENANT, user_id=user_id)
    assert not result.is_error, f"{tool} as {user_id} failed: {result.content}"
    assert result.structured_content is not None
    return result.structured_content


async def bounded(seconds: float, call: Callable[[], Any]) -> tuple[Any, float]:
    """Run `call` with a hard deadline (a hang fails the test); return its result and elapsed time."""
    start = time.monotonic()
    with anyio.fail_after(seconds):
        result = await call()
    return result, time.monotonic() - start


class BusyRun:
    """Workers calling as each user in turn until a conductor, pacing itself on their reports, is done.

    Each worker reports one outcome per call with `report`; the conductor waits on those with
    `wait_for`, so a fault is switched on or off only after the run has really moved on.
    """

    def __init__(self, user_ids: Sequence[str]) -> None:
        self._user_ids = list(user_ids)
        self._send, self._receive = anyio.create_memory_object_stream[object](math.inf)

    def report(self, outcome: object = None) -> None:
        self._send.send_nowait(outcome)

    async def wait_for(self, count: int, outcome: object = _EVERY) -> None:
        """Return once `count` more outcomes (only those equal to `outcome`, if given) are reported."""
        seen = 0
        async for reported in self._receive:
            seen += outcome is _EVERY or reported == outcome
            if seen >= count:
                return

    async def run(
        self,
        conductor: Callable[[], Awaitable[None]],
        call_as: Callable[[str], Awaitable[None]],
        *,
        workers: int,
        stride: int,
        seconds: float,
    ) -> None:
        """`workers` tasks, the n-th starting `n * stride` users in, call until `conductor` returns;
        the whole run fails if it takes longer than `seconds`."""
        done = anyio.Event()

        async def conduct() -> None:
            try:
                await conductor()
            finally:
                done.set()

        async def worker(offset: int) -> None:
            turn = offset
            while not done.is_set():
                user_id = self._user_ids[turn % len(self._user_ids)]
                turn += 1
                await call_as(user_id)

        with self._send, self._receive, anyio.fail_after(seconds):
            async with anyio.create_task_group() as group:
                group.start_soon(conduct)
                for offset in range(workers):
                    group.start_soon(worker, offset * stride)
