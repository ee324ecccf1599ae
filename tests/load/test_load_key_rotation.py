"""Key rotation at the issuer in the middle of a busy run: no valid call fails."""

from __future__ import annotations

import anyio
import jwt
import pytest
from load_support import TENANT, BusyRun, Host, bounded, call_tool, create_users, open_host, provider_for

from client_runtime import TokenKey
from harness.stack import LocalStack

# RS256 -> ES256 -> EdDSA -> RS256: every rotation also changes the key type the server must handle.
ROTATIONS = ("ES256", "EdDSA", "RS256")
CALLS_BETWEEN_ROTATIONS = 12


@pytest.mark.anyio
async def test_rotating_keys_during_a_busy_run_fails_no_valid_call(fault_stack: LocalStack) -> None:
    stack = fault_stack
    user_ids = [f"rotor-{n:02d}" for n in range(16)]
    subjects = await anyio.to_thread.run_sync(create_users, stack.admin, [*user_ids, "long-lived"])
    provider = provider_for(stack.server_url)
    answers: list[tuple[str, str]] = []
    failures: list[BaseException] = []
    busy = BusyRun(user_ids)
    kids: list[str] = [stack.admin.jwks()["keys"][0]["kid"]]

    async with (
        open_host(stack.issuer_url, stack.secret, cache=False) as minting,
        open_host(stack.issuer_url, stack.secret) as caching,
    ):
        # A token minted before any rotation, held in a cache and used again after all of them.
        first = await call_tool(caching.runtime, provider, "long-lived", "whoami")
        assert first["sub"] == subjects["long-lived"]

        async def call_as(user_id: str) -> None:
            try:
                answer, _ = await bounded(30, lambda: whoami(minting, user_id))
            except Exception as exc:  # every failure counts against the run
                failures.append(exc)
            else:
                answers.append((subjects[user_id], str(answer["sub"])))
            busy.report()

        async def whoami(host: Host, user_id: str) -> dict[str, object]:
            return await call_tool(host.runtime, provider, user_id, "whoami")

        async def rotator() -> None:
            await busy.wait_for(CALLS_BETWEEN_ROTATIONS)
            for alg in ROTATIONS:
                kids.append(await anyio.to_thread.run_sync(lambda alg=alg: stack.admin.rotate_keys(alg)))
                await busy.wait_for(CALLS_BETWEEN_ROTATIONS)

        await busy.run(rotator, call_as, workers=8, stride=2, seconds=60)

        again = await call_tool(caching.runtime, provider, "long-lived", "whoami")
        held = caching.broker.cached(TokenKey(TENANT, "long-lived", "account", stack.server_url))

    assert failures == []
    assert answers and all(asked == answered for asked, answered in answers)
    assert len(answers) >= CALLS_BETWEEN_ROTATIONS * (len(ROTATIONS) + 1)
    # The cached token was signed by the first key and still verified after three rotations.
    assert again["sub"] == subjects["long-lived"]
    assert held is not None
    assert jwt.get_unverified_header(held.token)["kid"] == kids[0]
    published = {key["kid"] for key in stack.admin.jwks()["keys"]}
    assert set(kids) <= published
    assert len(set(kids)) == len(ROTATIONS) + 1
