"""200 concurrent users, each making several forwarded calls through one runtime: nobody sees anyone else."""

from __future__ import annotations

import anyio
import pytest
from load_support import TENANT, call_tool, create_users

from client_runtime import MCPToolRuntime
from harness.stack import LocalStack

USERS = 200


@pytest.mark.anyio
async def test_200_concurrent_users_each_see_only_their_own_identity_and_notes(
    idfwd_stack: LocalStack, idfwd_runtime: MCPToolRuntime
) -> None:
    user_ids = [f"crowd-{n:03d}" for n in range(USERS)]
    subjects = await anyio.to_thread.run_sync(create_users, idfwd_stack.admin, user_ids)
    provider = idfwd_stack.provider(TENANT)
    seen: dict[str, list[dict[str, object]]] = {user_id: [] for user_id in user_ids}

    async def session_of(user_id: str) -> None:
        note = f"note of {user_id}"
        added = await call_tool(idfwd_runtime, provider, user_id, "add_note", {"text": note})
        identity = await call_tool(idfwd_runtime, provider, user_id, "whoami")
        listed = await call_tool(idfwd_runtime, provider, user_id, "list_notes")
        seen[user_id] = [added, identity, listed]

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for user_id in user_ids:
                group.start_soon(session_of, user_id)

    for user_id, (added, identity, listed) in seen.items():
        note = f"note of {user_id}"
        assert added == {"notes": [note]}
        assert identity["sub"] == subjects[user_id]
        assert identity["email"] == f"{user_id}@example.com"
        assert identity["tenant_id"] == TENANT
        assert identity["aud"] == idfwd_stack.server_url
        assert listed == {"notes": [note]}
