"""End-to-end overhead of identity forwarding: `whoami` with forwarding on vs off, cold vs warm.

    python bench/e2e_overhead.py [--calls 150] [--cold-users 20] [--quick]

The issuer, the reference MCP server and a no-auth baseline server (bench/_baseline.py: same
tools and SDK stack, no Bearer check) run in one child process; the client runtime runs here.
Every call goes through `MCPToolRuntime.invoke`, which opens a fresh MCP session per call.
"On" and "off" calls are interleaved (alternating which goes first) so drift hits both alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable

import anyio
from _support import machine_summary, markdown_table, median, ms, percentile, servers_process

from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IdentityMode,
    MCPProvider,
    MCPToolRuntime,
    TokenBroker,
)
from fake_enterprise import AdminClient

GOAL_RATIO = 1.05
TENANT = "acme"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=150, help="measured calls per side (default 150)")
    parser.add_argument("--warmup", type=int, default=15, help="unmeasured calls per side first (default 15)")
    parser.add_argument("--cold-users", type=int, default=20, help="fresh users, cold vs warm (default 20)")
    parser.add_argument("--quick", action="store_true", help="small run: 30 calls, 5 cold users")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.warmup, args.cold_users = 30, 5, 5
    return args


async def timed(call: Callable[[], Awaitable[str]]) -> tuple[float, str]:
    start = time.perf_counter()
    subject = await call()
    return time.perf_counter() - start, subject


def row(label: str, samples: list[float]) -> list[object]:
    return [
        label,
        len(samples),
        ms(median(samples)),
        ms(percentile(samples, 95)),
        ms(sum(samples) / len(samples)),
    ]


async def measure(args: argparse.Namespace) -> int:
    with servers_process() as servers:
        users = [f"bench-user-{n}" for n in range(1 + args.cold_users)]
        with AdminClient(servers.issuer_url, servers.secret) as admin:
            for user_id in users:
                admin.create_user(TENANT, user_id, email=f"{user_id}@example.com", name=user_id)
                admin.grant(TENANT, user_id)
        forwarding = MCPProvider(
            provider_id="forwarding",
            tenant_id=TENANT,
            server_url=servers.server_url,
            identity_mode=IdentityMode.IDP_TOKEN,
        )
        baseline = MCPProvider(
            provider_id="baseline", tenant_id=TENANT, server_url=servers.baseline_url, identity_mode="off"
        )
        settings = EnterpriseTokenSettings(issuer_url=servers.issuer_url, inner_api_secret=servers.secret)
        async with EnterpriseTokenClient(settings) as token_client:
            runtime = MCPToolRuntime(broker=TokenBroker(token_client))

            async def whoami(provider: MCPProvider, user_id: str) -> str:
                result = await runtime.invoke(provider, "whoami", tenant_id=TENANT, user_id=user_id)
                if result.is_error or not result.structured_content:
                    raise RuntimeError(f"whoami failed on {provider.provider_id}: {result.content}")
                return str(result.structured_content["sub"])

            steady_user = users[0]

            async def on() -> str:
                return await whoami(forwarding, steady_user)

            async def off() -> str:
                return await whoami(baseline, steady_user)

            for _ in range(args.warmup):
                await on()
                await off()
            on_samples: list[float] = []
            off_samples: list[float] = []
            for index in range(args.calls):
                pair = ((on, on_samples, steady_user), (off, off_samples, servers.baseline_subject))
                for call, samples, expected in pair if index % 2 == 0 else reversed(pair):
                    elapsed, subject = await timed(call)
                    if subject != expected:
                        raise RuntimeError(f"whoami answered {subject!r}, expected {expected!r}")
                    samples.append(elapsed)

            cold_samples: list[float] = []
            warm_samples: list[float] = []
            for user_id in users[1:]:
                for samples in (cold_samples, warm_samples):
                    elapsed, subject = await timed(lambda user_id=user_id: whoami(forwarding, user_id))
                    if subject != user_id:
                        raise RuntimeError(f"whoami answered {subject!r}, expected {user_id!r}")
                    samples.append(elapsed)

            mint_samples: list[float] = []
            for user_id in users[1:]:
                start = time.perf_counter()
                await token_client.issue_token(tenant_id=TENANT, user_id=user_id, audience=servers.server_url)
                mint_samples.append(time.perf_counter() - start)

    report(args, on_samples, off_samples, cold_samples, warm_samples, mint_samples)
    return 0


def report(
    args: argparse.Namespace,
    on_samples: list[float],
    off_samples: list[float],
    cold_samples: list[float],
    warm_samples: list[float],
    mint_samples: list[float],
) -> None:
    median_ratio = median(on_samples) / median(off_samples)
    p95_ratio = percentile(on_samples, 95) / percentile(off_samples, 95)
    verdict = "met" if median_ratio <= GOAL_RATIO else "NOT met"
    print(f"## End-to-end overhead of identity forwarding ({machine_summary()})")
    print()
    print(
        "Client (MCPToolRuntime, a fresh MCP session per call) in this process; issuer, MCP server and\n"
        "baseline server in one child process (bench/_servers.py). 'off' is the same tools and mcp SDK\n"
        "stack with no Bearer check and a fixed identity injected (bench/_baseline.py), because\n"
        "fake_mcp_server has no unauthenticated mode. On/off calls interleaved, same user."
    )
    print()
    headers = ["whoami call", "n", "median ms", "p95 ms", "mean ms"]
    print(
        markdown_table(
            headers,
            [
                row("forwarding on (idp_token, warm token cache)", on_samples),
                row("forwarding off (baseline server, no auth)", off_samples),
                [
                    "ratio on/off",
                    "",
                    f"{median_ratio:.3f}",
                    f"{p95_ratio:.3f}",
                    f"goal <= {GOAL_RATIO}: {verdict}",
                ],
            ],
        )
    )
    print()
    print(
        markdown_table(
            headers,
            [
                row("cold: first call of a user (mint + call)", cold_samples),
                row("warm: the same user's second call", warm_samples),
                row("issue-token alone (EnterpriseTokenClient)", mint_samples),
                [
                    "cold - warm",
                    "",
                    ms(median(cold_samples) - median(warm_samples)),
                    ms(percentile(cold_samples, 95) - percentile(warm_samples, 95)),
                    "",
                ],
            ],
        )
    )
    print()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return anyio.run(measure, args)


if __name__ == "__main__":
    sys.exit(main())
