"""Single flight and caching: how many issue-token calls N concurrent tool calls cause.

    python bench/single_flight.py [--calls 100] [--quick] [--json-out PATH]

N concurrent `whoami` calls of one user through one `MCPToolRuntime` must cause exactly one
issue-token call; N concurrent calls of N different users exactly N; the same N users again
(warm cache) none. Issue-token calls are counted by a `TokenSource` wrapped around the real
`EnterpriseTokenClient`, against a real issuer and MCP server on loopback (harness LocalStack,
in this process). Exits 1 if a count is off or a call answers as the wrong user.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import anyio
from _support import Report, add_json_out_argument, machine_summary, markdown_table

from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IssuedToken,
    MCPToolRuntime,
    TokenBroker,
)
from harness.stack import LocalStack, StackSettings

TENANT = "acme"


class CountingTokenSource:
    """The real issuer client, counting the issue-token calls that reach it."""

    def __init__(self, client: EnterpriseTokenClient) -> None:
        self._client = client
        self.calls = 0

    async def issue_token(
        self, *, tenant_id: str, user_id: str, audience: str, user_type: str = "account"
    ) -> IssuedToken:
        self.calls += 1
        return await self._client.issue_token(
            tenant_id=tenant_id, user_id=user_id, audience=audience, user_type=user_type
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100, help="N: concurrent tool calls (default 100)")
    parser.add_argument("--quick", action="store_true", help="N = 20")
    add_json_out_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.calls = 20
    return args


async def measure(args: argparse.Namespace) -> int:
    n = args.calls
    rows: list[list[object]] = []
    report = Report("single_flight")
    ok = True
    logging.disable(logging.INFO)  # the mcp SDK's per-request INFO lines
    with LocalStack(StackSettings()) as stack:
        created = [stack.new_user(TENANT) for _ in range(n + 1)]
        subjects = {user.user_id: user.sub for user in created}
        lone_user, *many_users = subjects
        provider = stack.provider(TENANT)
        settings = EnterpriseTokenSettings(issuer_url=stack.issuer_url, inner_api_secret=stack.secret)
        async with EnterpriseTokenClient(settings) as client:
            source = CountingTokenSource(client)
            runtime = MCPToolRuntime(broker=TokenBroker(source))

            async def whoami(user_id: str, wrong: list[str]) -> None:
                result = await runtime.invoke(provider, "whoami", tenant_id=TENANT, user_id=user_id)
                subject = (result.structured_content or {}).get("sub")
                if result.is_error or subject != subjects[user_id]:
                    wrong.append(user_id)

            async def scenario(name: str, label: str, user_ids: list[str], expected: int) -> None:
                nonlocal ok
                before = source.calls
                wrong: list[str] = []
                start = time.perf_counter()
                async with anyio.create_task_group() as group:
                    for user_id in user_ids:
                        group.start_soon(whoami, user_id, wrong)
                elapsed = time.perf_counter() - start
                made = source.calls - before
                passed = made == expected and not wrong
                ok &= passed
                calls = f"issue-token calls for {label}"
                report.add(f"{name}.issue_token_calls", made, "count", label=calls, headline=True)
                report.add(f"{name}.expected", expected, "count", label=f"{label}: expected")
                report.add(f"{name}.wrong_answers", len(wrong), "count", label=f"{label}: wrong answers")
                report.add(f"{name}.wall", elapsed, "s", label=f"{label}: wall time")
                rows.append(
                    [
                        label,
                        len(user_ids),
                        made,
                        expected,
                        len(wrong),
                        f"{elapsed:.2f}",
                        "PASS" if passed else "FAIL",
                    ]
                )

            await scenario("one_user_cold", f"{n} concurrent calls, 1 user, cold cache", [lone_user] * n, 1)
            await scenario("many_users_cold", f"{n} concurrent calls, {n} users, cold cache", many_users, n)
            await scenario("many_users_warm", f"the same {n} users again, warm cache", many_users, 0)

    print(f"### Single flight and caching ({machine_summary()})")
    print()
    print(
        "One MCPToolRuntime + TokenBroker; issuer and MCP server on loopback (harness LocalStack, in this\n"
        "process); issue-token calls counted where they leave the broker."
    )
    print()
    print(
        markdown_table(
            ["scenario", "tool calls", "issue-token calls", "expected", "wrong answers", "wall s", "result"],
            rows,
        )
    )
    print()
    report.write(args.json_out)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    return anyio.run(measure, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
