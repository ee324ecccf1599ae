"""token_exchange and id_jag end to end: the IdP, the MCP server in the mode's auth, and a host runtime.

Two users call whoami concurrently (several calls each); each arrives as themselves, and the IdP
answers exactly one token exchange per user (the host's cache and single flight).
"""

from __future__ import annotations

import anyio
import pytest
from modes_support import exchanges_of, whoami

from client_runtime import IdentityMode
from harness.stack import LocalStack, StackHost, StackUser

pytestmark = pytest.mark.anyio

CALLS_PER_USER = 3


async def _concurrent_whoami(
    host: StackHost, mode: IdentityMode, users: list[StackUser]
) -> dict[str, list[dict[str, object]]]:
    seen: dict[str, list[dict[str, object]]] = {user.user_id: [] for user in users}

    async def call(user: StackUser) -> None:
        seen[user.user_id].append(await whoami(host.runtime, host.providers[mode], user))

    async with anyio.create_task_group() as group:
        for _ in range(CALLS_PER_USER):
            for user in users:
                group.start_soon(call, user)
    return seen


async def test_token_exchange_two_users_concurrently_each_arrive_as_themselves(stack: LocalStack) -> None:
    users = [stack.new_user(prefix="tx-alice"), stack.new_user(prefix="tx-bob")]
    async with stack.open_host() as host:
        seen = await _concurrent_whoami(host, IdentityMode.TOKEN_EXCHANGE, users)
    for user in users:
        assert len(seen[user.user_id]) == CALLS_PER_USER
        for identity in seen[user.user_id]:
            assert identity["sub"] == user.sub
            assert identity["preferred_username"] == user.user_id
            assert identity["iss"] == stack.issuer_url and identity["aud"] == stack.server_url
        assert exchanges_of(stack, user, "access_token") == 1
        assert exchanges_of(stack, user, "id-jag") == 0


async def test_id_jag_two_users_concurrently_each_arrive_as_themselves(stack: LocalStack) -> None:
    users = [stack.new_user(prefix="jag-alice"), stack.new_user(prefix="jag-bob")]
    mark = len(stack.calls)
    async with stack.open_host() as host:
        seen = await _concurrent_whoami(host, IdentityMode.ID_JAG, users)
    authorization_server = host.providers[IdentityMode.ID_JAG].server_url.removesuffix("/mcp")
    for user in users:
        assert len(seen[user.user_id]) == CALLS_PER_USER
        for identity in seen[user.user_id]:
            # The server's own AS issued the token, for the IdP's subject of this user.
            assert identity["sub"] == user.sub
            assert identity["iss"] == authorization_server
            assert identity["aud"] == stack.id_jag_server_url
        assert exchanges_of(stack, user, "id-jag") == 1
        assert exchanges_of(stack, user, "access_token") == 0
    redeemed = [
        call
        for call in stack.calls.since(mark)
        if call.server == "mcp-id-jag" and call.grant_type == "jwt-bearer" and call.status == 200
    ]
    assert len(redeemed) == len(users)


async def test_warm_calls_make_no_token_request(stack: LocalStack) -> None:
    user = stack.new_user(prefix="warm")
    async with stack.open_host() as host:
        for mode in (IdentityMode.TOKEN_EXCHANGE, IdentityMode.ID_JAG):
            await whoami(host.runtime, host.providers[mode], user)
            mark = len(stack.calls)
            assert (await whoami(host.runtime, host.providers[mode], user))["sub"] == user.sub
            warm = stack.calls.since(mark)
            assert [call.server for call in warm] == [
                "mcp" if mode is IdentityMode.TOKEN_EXCHANGE else "mcp-id-jag"
            ]
