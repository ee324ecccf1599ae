"""The issuer's JWKS endpoint down for a while: cached keys keep working, and the server recovers.

The MCP server here caches the JWKS for at most 0.2 s (and waits 0.1 s between failed fetches),
so during the outage it really does try to refresh, fail, and carry on with the stale keys;
with the defaults (60 s max-age) it would not even notice an outage this short.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import pytest
from load_support import Host, call_tool, create_users, open_host, provider_for

import fake_mcp_server
from client_runtime import MCPIdentityForwardingError, MCPToolInvocationError
from harness.servers import bind_loopback, socket_url, start_in_thread
from harness.stack import LocalStack

MAX_JWKS_AGE = 0.2
REFRESH_INTERVAL = 0.1
# Bounds on the polling loops below; each iteration is one real call, never a sleep.
MAX_CALLS = 400


@dataclass(frozen=True)
class ShortCacheServer:
    url: str
    verifier: fake_mcp_server.JWKSTokenVerifier


@pytest.fixture
def short_cache_server(faulty: LocalStack) -> Iterator[ShortCacheServer]:
    """A reference MCP server trusting `faulty`'s issuer; it fetches no keys before its first token."""
    sock = bind_loopback()
    resource_url = socket_url(sock) + "/mcp"
    verifier = fake_mcp_server.VerifierSettings(
        audience=resource_url,
        issuer=faulty.issuer_url,
        max_jwks_max_age=MAX_JWKS_AGE,
        min_jwks_refresh_interval=REFRESH_INTERVAL,
    )
    settings = fake_mcp_server.ServerSettings(
        issuer_url=faulty.issuer_url, resource_url=resource_url, verifier=verifier
    )
    app = fake_mcp_server.create_app(settings)
    served = start_in_thread(app, sock)
    try:
        yield ShortCacheServer(resource_url, app.state.verifier)
    finally:
        served.stop()


@pytest.mark.anyio
async def test_jwks_outage_keeps_cached_keys_working_and_the_server_recovers(
    faulty: LocalStack, short_cache_server: ShortCacheServer
) -> None:
    verifier, server_url = short_cache_server.verifier, short_cache_server.url
    provider = provider_for(server_url)
    user_ids = [f"outage-{n:02d}" for n in range(10)]
    subjects = await anyio.to_thread.run_sync(create_users, faulty.admin, user_ids)
    turn = 0

    async def fresh_token_call(host: Host) -> tuple[str, str]:
        """whoami with a newly minted token, so the server must look its key up, not remember it."""
        nonlocal turn
        user_id = user_ids[turn % len(user_ids)]
        turn += 1
        answer = await call_tool(host.runtime, provider, user_id, "whoami")
        return subjects[user_id], str(answer["sub"])

    async with open_host(faulty.issuer_url, faulty.secret, cache=False) as host:
        with anyio.fail_after(45):
            asked, answered = await fresh_token_call(host)
            assert asked == answered
            fetches_before_outage = verifier.jwks.fetches

            faulty.admin.set_faults(jwks_unavailable=True)
            # Keep calling until the server has tried (and failed) to refresh twice: every one of
            # those calls must still succeed, on the cached key.
            during_outage = 0
            while verifier.jwks.fetches < fetches_before_outage + 2:
                asked, answered = await fresh_token_call(host)
                assert asked == answered
                during_outage += 1
                assert during_outage < MAX_CALLS, "the server never tried to refresh its JWKS"

            # A key the server has never seen cannot be verified while the JWKS is down: refused
            # (a mapped error), not accepted and not a crash.
            new_kid = await anyio.to_thread.run_sync(faulty.admin.rotate_keys)
            with pytest.raises(MCPIdentityForwardingError) as refused:
                await fresh_token_call(host)
            assert refused.value.status_code == 401

            faulty.admin.clear_faults()
            for _ in range(MAX_CALLS):
                try:
                    asked, answered = await fresh_token_call(host)
                except MCPIdentityForwardingError:
                    continue  # still inside the refresh back-off; the next call may fetch
                assert asked == answered
                break
            else:
                pytest.fail("the server did not pick up the new key after the JWKS came back")
            for _ in range(5):
                asked, answered = await fresh_token_call(host)
                assert asked == answered

    assert during_outage >= 1
    assert new_kid in {key["kid"] for key in faulty.admin.jwks()["keys"]}


@pytest.mark.anyio
async def test_a_server_that_starts_during_the_outage_answers_a_mapped_error_then_recovers(
    faulty: LocalStack, short_cache_server: ShortCacheServer
) -> None:
    provider = provider_for(short_cache_server.url)
    subjects = await anyio.to_thread.run_sync(create_users, faulty.admin, ["cold-start"])
    async with open_host(faulty.issuer_url, faulty.secret) as host:
        with anyio.fail_after(45):
            faulty.admin.set_faults(jwks_unavailable=True)
            # No keys at all: the server cannot verify anything and says so (503), which the
            # runtime maps; the token is not blamed (no MCPIdentityForwardingError).
            with pytest.raises(MCPToolInvocationError, match=r"HTTP 503") as unavailable:
                await call_tool(host.runtime, provider, "cold-start", "whoami")
            assert unavailable.value.status_code == 503

            faulty.admin.clear_faults()
            for _ in range(MAX_CALLS):
                try:
                    answer = await call_tool(host.runtime, provider, "cold-start", "whoami")
                except MCPToolInvocationError:
                    continue  # still inside the refresh back-off after the failed fetch
                break
            else:
                pytest.fail("the server never fetched the JWKS after it came back")
    assert answer["sub"] == subjects["cold-start"]
