"""End-to-end cost of identity forwarding: `whoami` with forwarding off, warm (reused or fresh MCP session),
cold, and minting a token on every call (the seed's behaviour), measured side by side.

    python bench/e2e_overhead.py [--calls 200] [--repeats 3] [--quick] [--json-out PATH]

The issuer, the reference MCP server and a no-auth baseline server (bench/_servers.py and
bench/_baseline.py: same tools and SDK stack, no Bearer check) run in one child process; the
client runtime runs here. Every call goes through `MCPToolRuntime.invoke`. Each repeat takes
`--calls` samples of every mode, the modes interleaved call by call (the order rotating) so
drift hits all alike; a figure is the min and the median over the repeats of each repeat's median.
A last table times the forwarding-specific work alone (token cache hit, header stamping,
verification of an already-verified token), which the end-to-end figures cannot resolve.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import httpx2
from _support import (
    Measurement,
    Report,
    add_json_out_argument,
    machine_summary,
    markdown_table,
    median,
    ms,
    percentile,
    servers_process,
)

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

TENANT = "acme"
ISOLATED_ROUNDS = 20_000
# A skew larger than any token's lifetime: no token is ever fresh, so every call asks the issuer.
NEVER_CACHE_SKEW = 10**9
GOAL_ON_OFF = 1.05
GOAL_REUSED_VS_FRESH = 0.5
GOAL_REUSED_VS_MINT = 0.4

# The ratios the goals are about: (mode, other mode, goal).
RATIOS = (
    ("reused", "off", GOAL_ON_OFF),
    ("reused", "fresh", GOAL_REUSED_VS_FRESH),
    ("reused", "mint", GOAL_REUSED_VS_MINT),
)

# Row label of each mode, in the order of the table.
MODES = {
    "off": "forwarding off, reused session (baseline server, no auth)",
    "reused": "forwarding warm, reused session (open runtime)",
    "fresh": "forwarding warm, fresh session per call (session_reuse=False)",
    "cold": "cold: a user's first call (mint + open session + call)",
    "mint": "mint every call + fresh session (seed style)",
}


# Figure names of the forwarding work timed alone, in the order `measure` times it.
ISOLATED = ("broker_cache_hit", "stamp_request", "verifier_cache_hit")


@dataclass
class Samples:
    # Seconds per call, one list per repeat, per mode.
    runs: dict[str, list[list[float]]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    # Seconds per operation, each the mean over ISOLATED_ROUNDS.
    isolated: dict[str, float] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--calls", type=int, default=200, help="measured calls per mode and repeat (default 200)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default 3)")
    parser.add_argument("--warmup", type=int, default=15, help="unmeasured calls per mode first (default 15)")
    parser.add_argument("--quick", action="store_true", help="small run: 30 calls per mode and repeat")
    add_json_out_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.warmup = 30, 5
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
        steady_user = "bench-steady"
        cold_users = [f"bench-cold-{n}" for n in range(args.repeats * args.calls + args.warmup)]
        subjects: dict[str, str] = {}
        with AdminClient(servers.issuer_url, servers.admin_secret) as admin:
            for user_id in [steady_user, *cold_users]:
                created = admin.create_user(TENANT, user_id, email=f"{user_id}@example.com", name=user_id)
                subjects[user_id] = created["sub"]
                admin.grant(TENANT, user_id)
        forwarding = MCPProvider(
            provider_id="forwarding",
            tenant_id=TENANT,
            server_url=servers.server_url,
            identity_mode=IdentityMode.IDP_TOKEN,
        )
        fresh_forwarding = MCPProvider(
            provider_id="forwarding-fresh",
            tenant_id=TENANT,
            server_url=servers.server_url,
            identity_mode=IdentityMode.IDP_TOKEN,
            session_reuse=False,
        )
        baseline = MCPProvider(
            provider_id="baseline", tenant_id=TENANT, server_url=servers.baseline_url, identity_mode="off"
        )
        settings = EnterpriseTokenSettings(issuer_url=servers.issuer_url, inner_api_secret=servers.secret)
        async with EnterpriseTokenClient(settings) as token_client:
            broker = TokenBroker(token_client)
            minting = TokenBroker(token_client, skew=NEVER_CACHE_SKEW)
            async with (
                MCPToolRuntime(broker=broker) as runtime,
                MCPToolRuntime(broker=broker) as cold_runtime,
                MCPToolRuntime(broker=minting) as minting_runtime,
            ):

                async def whoami(on: MCPToolRuntime, provider: MCPProvider, user_id: str) -> str:
                    result = await on.invoke(provider, "whoami", tenant_id=TENANT, user_id=user_id)
                    if result.is_error or not result.structured_content:
                        raise RuntimeError(f"whoami failed on {provider.provider_id}: {result.content}")
                    return str(result.structured_content["sub"])

                fresh_cold = iter(cold_users)
                steady = subjects[steady_user]

                def calls() -> dict[str, tuple[Callable[[], Awaitable[str]], str]]:
                    cold_user = next(fresh_cold)
                    return {
                        "off": (lambda: whoami(runtime, baseline, steady_user), servers.baseline_subject),
                        "reused": (lambda: whoami(runtime, forwarding, steady_user), steady),
                        "fresh": (lambda: whoami(runtime, fresh_forwarding, steady_user), steady),
                        "cold": (lambda: whoami(cold_runtime, forwarding, cold_user), subjects[cold_user]),
                        "mint": (lambda: whoami(minting_runtime, fresh_forwarding, steady_user), steady),
                    }

                for _ in range(args.warmup):
                    for call, expected in calls().values():
                        await timed(call, expected)
                modes = list(MODES)
                for _ in range(args.repeats):
                    run: dict[str, list[float]] = {mode: [] for mode in modes}
                    for index in range(args.calls):
                        this_round = calls()
                        shift = index % len(modes)
                        for mode in modes[shift:] + modes[:shift]:
                            call, expected = this_round[mode]
                            run[mode].append(await timed(call, expected))
                    for mode in modes:
                        samples.runs[mode].append(run[mode])

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


def repeat_medians(runs: list[list[float]]) -> list[float]:
    return [median(run) for run in runs]


def row(label: str, runs: list[list[float]]) -> list[object]:
    medians = repeat_medians(runs)
    pooled = [sample for run in runs for sample in run]
    return [
        label,
        f"{len(runs)} x {len(runs[0])}",
        ms(min(medians)),
        ms(median(medians)),
        ms(percentile(pooled, 95)),
    ]


def medians_ratio(samples: Samples, mode: str, other: str) -> tuple[float, float]:
    """mode ÷ other: by the lowest repeat medians, and by the medians of the repeat medians."""
    mine, theirs = repeat_medians(samples.runs[mode]), repeat_medians(samples.runs[other])
    return min(mine) / min(theirs), median(mine) / median(theirs)


def ratio(samples: Samples, mode: str, other: str, goal: float) -> list[object]:
    by_min, by_median = medians_ratio(samples, mode, other)
    verdict = "met" if by_median <= goal else "NOT met"
    return [f"ratio {mode} / {other}", "", f"{by_min:.3f}", f"{by_median:.3f}", f"goal <= {goal}: {verdict}"]


def figures(samples: Samples) -> Report:
    """Every mode with its samples, the goals' ratios (the table's median column) as headlines."""
    report = Report("e2e_overhead")
    for mode, label in MODES.items():
        measurement = Measurement(tuple(tuple(run) for run in samples.runs[mode]))
        report.measured(mode, measurement, "ms", label=f"whoami, {label}")
    for mode, other, goal in RATIOS:
        _, by_median = medians_ratio(samples, mode, other)
        label = f"whoami {MODES[mode]} ÷ {MODES[other]} (goal <= {goal})"
        report.add(f"{mode}_over_{other}", by_median, "x", label=label, headline=True)
    for name, (label, seconds) in zip(ISOLATED, samples.isolated.items(), strict=True):
        report.add(f"isolated.{name}", seconds * 1e6, "us", label=label)
    return report


def report(samples: Samples) -> None:
    print(f"### End-to-end cost of identity forwarding ({machine_summary()})")
    print()
    print(
        "Client (MCPToolRuntime) in this process; issuer, MCP server and baseline server in one child\n"
        "process (bench/_servers.py). 'off' is the same tools and mcp SDK stack with no Bearer check\n"
        "and a fixed identity injected (bench/_baseline.py), because fake_mcp_server has no\n"
        "unauthenticated mode. Modes interleaved call by call; min and median over the repeats of\n"
        "each repeat's median; p95 over all samples of the mode."
    )
    print()
    headers = ["whoami call", "repeats x n", "min ms", "median ms", "p95 ms"]
    rows = [row(label, samples.runs[mode]) for mode, label in MODES.items()]
    rows += [ratio(samples, mode, other, goal) for mode, other, goal in RATIOS]
    print(markdown_table(headers, rows))
    print()
    print(
        markdown_table(
            ["forwarding work in isolation (this process)", "us per operation"],
            [[label, f"{seconds * 1e6:.2f}"] for label, seconds in samples.isolated.items()],
        )
    )
    print()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    samples = anyio.run(measure, args)
    report(samples)
    figures(samples).write(args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
