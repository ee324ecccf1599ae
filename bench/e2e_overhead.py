"""End-to-end overhead of identity forwarding: `whoami` with forwarding on vs off, cold vs warm.

    python bench/e2e_overhead.py [--calls 150] [--cold-users 20] [--quick]

The issuer, the reference MCP server and a no-auth baseline server (bench/_baseline.py: same
tools and SDK stack, no Bearer check) run in one child process; the client runtime runs here.
Every call goes through `MCPToolRuntime.invoke`, which opens a fresh MCP session per call.
"On" and "off" calls are interleaved (alternating which goes first) so drift hits both alike.
A last table times the forwarding-specific work alone (token cache hit, header stamping,
verification of an already-verified token), which the end-to-end ratio cannot resolve.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import httpx2
from _support import machine_summary, markdown_table, median, ms, percentile, servers_process

from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    ForwardedIdentityAuth,
    IdentityMode,
    MCPProvider,
    MCPToolRuntime,
    TokenBroker,
)
from fake_enterprise import AdminClient
from fake_mcp_server import JWKSTokenVerifier, VerifierSettings

GOAL_RATIO = 1.05
TENANT = "acme"
ISOLATED_ROUNDS = 20_000


@dataclass
class Samples:
    on: list[float] = field(default_factory=list)
    off: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    mint: list[float] = field(default_factory=list)
    # Seconds per operation, each the mean over ISOLATED_ROUNDS.
    isolated: dict[str, float] = field(default_factory=dict)


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


async def timed(call: Callable[[], Awaitable[str]], expected: str) -> float:
    start = time.perf_counter()
    subject = await call()
    elapsed = time.perf_counter() - start
    if subject != expected:
        raise RuntimeError(f"whoami answered {subject!r}, expected {expected!r}")
    return elapsed


async def per_operation(operation: Callable[[], Awaitable[object]], rounds: int = ISOLATED_ROUNDS) -> float:
    for _ in range(100):
        await operation()
    start = time.perf_counter()
    for _ in range(rounds):
        await operation()
    return (time.perf_counter() - start) / rounds


async def measure(args: argparse.Namespace) -> Samples:
    samples = Samples()
    with servers_process() as servers:
        users = [f"bench-user-{n}" for n in range(1 + args.cold_users)]
        with AdminClient(servers.issuer_url, servers.admin_secret) as admin:
            subjects: dict[str, str] = {}
            for user_id in users:
                created = admin.create_user(TENANT, user_id, email=f"{user_id}@example.com", name=user_id)
                subjects[user_id] = created["sub"]
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
            broker = TokenBroker(token_client)
            runtime = MCPToolRuntime(broker=broker)

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
            for index in range(args.calls):
                pair = ((on, samples.on, subjects[steady_user]), (off, samples.off, servers.baseline_subject))
                for call, into, expected in pair if index % 2 == 0 else reversed(pair):
                    into.append(await timed(call, expected))

            for user_id in users[1:]:
                for into in (samples.cold, samples.warm):
                    cold = timed(lambda user_id=user_id: whoami(forwarding, user_id), subjects[user_id])
                    into.append(await cold)

            for user_id in users[1:]:
                start = time.perf_counter()
                await token_client.issue_token(tenant_id=TENANT, user_id=user_id, audience=servers.server_url)
                samples.mint.append(time.perf_counter() - start)

            # The forwarding-specific work of one warm call, alone.
            async def cache_hit() -> object:
                return await broker.get(tenant_id=TENANT, user_id=steady_user, audience=servers.server_url)

            token = (await cache_hit()).token  # type: ignore[attr-defined]
            auth = ForwardedIdentityAuth(token)
            request = httpx2.Request("POST", servers.server_url)

            async def stamp() -> object:
                return next(auth.auth_flow(request))

            verifier_settings = VerifierSettings(audience=servers.server_url, issuer=servers.issuer_url)
            async with JWKSTokenVerifier(verifier_settings) as verifier:
                await verifier.verify(token)

                async def verify_again() -> object:
                    return await verifier.verify(token)

                samples.isolated = {
                    "TokenBroker.get, cache hit (once per call)": await per_operation(cache_hit),
                    "ForwardedIdentityAuth stamps a request (per HTTP request)": await per_operation(stamp),
                    "JWKSTokenVerifier.verify, token seen before (per HTTP request)": await per_operation(
                        verify_again
                    ),
                }
    return samples


def row(label: str, samples: list[float]) -> list[object]:
    return [
        label,
        len(samples),
        ms(median(samples)),
        ms(percentile(samples, 95)),
        ms(sum(samples) / len(samples)),
    ]


def report(samples: Samples) -> None:
    median_ratio = median(samples.on) / median(samples.off)
    p95_ratio = percentile(samples.on, 95) / percentile(samples.off, 95)
    verdict = "met" if median_ratio <= GOAL_RATIO else "NOT met"
    print(f"### End-to-end overhead of identity forwarding ({machine_summary()})")
    print()
    print(
        "Client (MCPToolRuntime, a fresh MCP session per call) in this process; issuer, MCP server and\n"
        "baseline server in one child process (bench/_servers.py). 'off' is the same tools and mcp SDK\n"
        "stack with no Bearer check and a fixed identity injected (bench/_baseline.py), because\n"
        "fake_mcp_server has no unauthenticated mode. On/off calls interleaved, same user."
    )
    print()
    headers = ["whoami call", "n", "median ms", "p95 ms", "mean ms"]
    ratio = [
        "ratio on/off",
        "",
        f"{median_ratio:.3f}",
        f"{p95_ratio:.3f}",
        f"goal <= {GOAL_RATIO}: {verdict}",
    ]
    print(
        markdown_table(
            headers,
            [
                row("forwarding on (idp_token, warm token cache)", samples.on),
                row("forwarding off (baseline server, no auth)", samples.off),
                ratio,
            ],
        )
    )
    print()
    cold_minus_warm = [
        "cold - warm",
        "",
        ms(median(samples.cold) - median(samples.warm)),
        ms(percentile(samples.cold, 95) - percentile(samples.warm, 95)),
        "",
    ]
    print(
        markdown_table(
            headers,
            [
                row("cold: first call of a user (mint + call)", samples.cold),
                row("warm: the same user's second call", samples.warm),
                row("issue-token alone (EnterpriseTokenClient)", samples.mint),
                cold_minus_warm,
            ],
        )
    )
    print()
    print(
        markdown_table(
            ["forwarding work in isolation (this process)", "us per operation"],
            [[label, f"{seconds * 1e6:.2f}"] for label, seconds in samples.isolated.items()],
        )
    )
    print()


def main(argv: list[str] | None = None) -> int:
    report(anyio.run(measure, parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
