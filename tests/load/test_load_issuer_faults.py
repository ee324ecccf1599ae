"""A slow or failing issuer: retries and timeouts behave as documented, and no call ever hangs.

Documented (client_runtime.EnterpriseTokenSettings): `retries` extra attempts for transport
errors and 5xx only, `backoff * 2**attempt` apart, each attempt bounded by `timeout`; every
failure is an `MCPTokenError` (4xx ones a named subclass). Elapsed-time checks are loose upper
bounds derived from those settings (a hang fails them), not speed tests.
"""

from __future__ import annotations

import anyio
import pytest
from load_support import BusyRun, Host, bounded, call_tool, create_users, open_host, provider_for

from client_runtime import (
    MCPIdentityRefreshError,
    MCPIssuerConfigError,
    MCPNoRefreshTokenError,
    MCPTokenError,
    MCPToolRuntime,
)
from harness.stack import LocalStack

# Scheduling, thread hand-offs and a loaded CI machine: generous on purpose.
SLACK = 3.0


def worst_case(timeout: float, retries: int, backoff: float) -> float:
    """The longest a token request may take under these settings, plus slack."""
    return (retries + 1) * timeout + sum(backoff * 2**attempt for attempt in range(retries)) + SLACK


async def whoami_as(runtime: MCPToolRuntime, server_url: str, user_id: str) -> str:
    return str((await call_tool(runtime, provider_for(server_url), user_id, "whoami"))["sub"])


@pytest.mark.anyio
async def test_issuer_slower_than_the_timeout_fails_every_call_with_a_retriable_error_in_time(
    faulty: LocalStack,
) -> None:
    user_ids = [f"slow-{n}" for n in range(8)]
    await anyio.to_thread.run_sync(create_users, faulty.admin, user_ids)
    faulty.admin.set_faults(latency_ms=2000)
    timeout, retries, backoff = 0.5, 1, 0.05
    failures: dict[str, MCPTokenError] = {}
    async with open_host(
        faulty.issuer_url, faulty.secret, issuer_timeout=timeout, retries=retries, backoff=backoff
    ) as host:

        async def call(user_id: str) -> None:
            limit = worst_case(timeout, retries, backoff)
            with pytest.raises(MCPTokenError) as caught:
                await bounded(limit, lambda: whoami_as(host.runtime, faulty.server_url, user_id))
            failures[user_id] = caught.value

        async with anyio.create_task_group() as group:
            for user_id in user_ids:
                group.start_soon(call, user_id)

    assert set(failures) == set(user_ids)
    for exc in failures.values():
        assert type(exc) is MCPTokenError  # a transport failure, not a refusal about the user
        assert exc.retriable
        assert "timeout" in str(exc).lower() or "reach" in str(exc).lower()
    # Each call made its first attempt and exactly `retries` more.
    assert host.counter.requests == len(user_ids) * (retries + 1)


@pytest.mark.anyio
async def test_issuer_slower_than_usual_but_within_the_timeout_still_answers_as_the_right_user(
    faulty: LocalStack,
) -> None:
    user_ids = [f"patient-{n}" for n in range(8)]
    subjects = await anyio.to_thread.run_sync(create_users, faulty.admin, user_ids)
    faulty.admin.set_faults(latency_ms=2000)
    timeout, retries, backoff = 5.0, 2, 0.05
    answers: dict[str, tuple[str, float]] = {}
    async with open_host(
        faulty.issuer_url, faulty.secret, issuer_timeout=timeout, retries=retries, backoff=backoff
    ) as host:

        async def call(user_id: str) -> None:
            limit = timeout + SLACK  # one attempt is enough: the issuer answers within the timeout
            answers[user_id] = await bounded(
                limit, lambda: whoami_as(host.runtime, faulty.server_url, user_id)
            )

        async with anyio.create_task_group() as group:
            for user_id in user_ids:
                group.start_soon(call, user_id)

    assert {user_id: subject for user_id, (subject, _) in answers.items()} == subjects
    # The fault was really in force (each call waited for the issuer) and nothing was retried.
    assert min(elapsed for _, elapsed in answers.values()) >= 2.0
    assert host.counter.requests == len(user_ids)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_issuer_5xx_is_retried_as_configured_then_mapped(faulty: LocalStack, status: int) -> None:
    (user_id,) = [f"fivexx-{status}"]
    await anyio.to_thread.run_sync(create_users, faulty.admin, [user_id])
    faulty.admin.set_faults(issue_token_status=status)
    timeout, retries, backoff = 2.0, 2, 0.01
    async with open_host(
        faulty.issuer_url, faulty.secret, issuer_timeout=timeout, retries=retries, backoff=backoff
    ) as host:
        with pytest.raises(MCPTokenError) as caught:
            await bounded(
                worst_case(timeout, retries, backoff),
                lambda: whoami_as(host.runtime, faulty.server_url, user_id),
            )
    assert type(caught.value) is MCPTokenError
    assert caught.value.status_code == status
    assert caught.value.retriable
    assert host.counter.requests == retries + 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (428, None, MCPNoRefreshTokenError),
        (401, "refresh_rejected", MCPIdentityRefreshError),
        (403, None, MCPIdentityRefreshError),
        (401, "invalid_client", MCPIssuerConfigError),
    ],
)
async def test_issuer_refusals_are_never_retried_and_keep_their_names(
    faulty: LocalStack, status: int, error: str | None, expected: type[MCPTokenError]
) -> None:
    user_id = f"refused-{status}-{error}"
    await anyio.to_thread.run_sync(create_users, faulty.admin, [user_id])
    faulty.admin.set_faults(issue_token_status=status, issue_token_error=error)
    async with open_host(faulty.issuer_url, faulty.secret, retries=2, backoff=0.01) as host:
        with pytest.raises(expected) as caught:
            await bounded(10, lambda: whoami_as(host.runtime, faulty.server_url, user_id))
    assert type(caught.value) is expected
    assert not caught.value.retriable
    assert host.counter.requests == 1


@pytest.mark.anyio
async def test_5xx_bursts_during_a_busy_run_give_right_answers_or_mapped_errors_only(
    faulty: LocalStack,
) -> None:
    user_ids = [f"bursty-{n:02d}" for n in range(24)]
    subjects = await anyio.to_thread.run_sync(create_users, faulty.admin, user_ids)
    timeout, retries, backoff = 2.0, 1, 0.01
    call_limit = worst_case(timeout, retries, backoff) + 10  # plus the MCP call itself
    bursts = 3
    wrong: list[tuple[str, str]] = []
    unexpected: list[BaseException] = []
    busy = BusyRun(user_ids)

    async with open_host(
        faulty.issuer_url,
        faulty.secret,
        cache=False,
        issuer_timeout=timeout,
        retries=retries,
        backoff=backoff,
    ) as host:

        async def whoami(host: Host, user_id: str) -> str:
            return await whoami_as(host.runtime, faulty.server_url, user_id)

        async def call_as(user_id: str) -> None:
            try:
                subject, _ = await bounded(
                    call_limit, lambda: whoami_as(host.runtime, faulty.server_url, user_id)
                )
            except MCPTokenError as exc:
                if type(exc) is not MCPTokenError or exc.status_code != 503:
                    unexpected.append(exc)
                busy.report("failure")
            else:
                if subject != subjects[user_id]:
                    wrong.append((user_id, subject))
                busy.report("success")

        async def conductor() -> None:
            for _ in range(bursts):
                await anyio.to_thread.run_sync(lambda: faulty.admin.set_faults(issue_token_status=503))
                await busy.wait_for(3, "failure")
                await anyio.to_thread.run_sync(faulty.admin.clear_faults)
                await busy.wait_for(10, "success")

        await busy.run(conductor, call_as, workers=8, stride=3, seconds=60)

    assert wrong == []
    assert unexpected == []
