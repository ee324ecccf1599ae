"""Issuer throughput: issue-token requests per second and latency at 1, 16 and 64 concurrent clients.

    python bench/issuer_throughput.py [--algs RS256 ES256 EdDSA] [--clients 1 16 64] [--seconds 3] [--quick]

For each algorithm the issuer runs in its own process (so this load generator does not share
its GIL) and is loaded over keep-alive HTTP connections, one per concurrent client. In the same
run, raw signing throughput (PyJWT `jwt.encode` of the same claims and header, one thread, with
a key of the same type and size as the issuer's) gives the ceiling: mint throughput is reported
as a fraction of it. The issuer signs on one core at a time (one Python process), so a fraction
close to 1 means the issuer spends its time signing, not in HTTP, JSON or storage.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from typing import Any

import anyio
import httpx
import jwt
from _support import (
    issuer_process,
    machine_summary,
    markdown_table,
    median,
    ms,
    percentile,
    process_cpu_seconds,
)
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fake_enterprise import SECRET_HEADER, SIGNING_ALGORITHMS, AdminClient

TENANT = "acme"
ISSUE_TOKEN_PATH = "/inner/api/mcp/issue-token"
AUDIENCE = "http://127.0.0.1:9100/mcp"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algs", nargs="+", choices=SIGNING_ALGORITHMS, default=list(SIGNING_ALGORITHMS))
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 16, 64], help="concurrency levels")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per level (default 3)")
    parser.add_argument("--sign-seconds", type=float, default=2.0, help="raw signing seconds (default 2)")
    parser.add_argument("--quick", action="store_true", help="1 s per level, 0.5 s raw signing")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.sign_seconds = 1.0, 0.5
    return args


def _private_key(alg: str) -> Any:
    # The same key types and sizes as fake_enterprise's key ring.
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def _claims_like_the_issuers() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "http://127.0.0.1:9000",
        "sub": "bench-user-0",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
        "tenant_id": TENANT,
        "azp": "mcp-host",
        "client_id": "mcp-host",
        "name": "bench-user-0",
        "user_type": "account",
        "email": "bench-user-0@example.com",
    }


def raw_signing_rate(alg: str, seconds: float) -> float:
    """PyJWT encodes per second, one thread, claims and header shaped like the issuer's."""
    key = _private_key(alg)
    claims = _claims_like_the_issuers()
    headers = {"kid": "bench-key", "typ": "JWT"}
    for _ in range(20):
        jwt.encode(claims, key, algorithm=alg, headers=headers)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        claims["jti"] = secrets.token_urlsafe(16)
        jwt.encode(claims, key, algorithm=alg, headers=headers)
        count += 1
    return count / (time.perf_counter() - start)


async def measure_level(
    url: str, secret: str, pid: int, users: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    headers = {SECRET_HEADER: secret}
    bodies = [
        {"tenant_id": TENANT, "user_id": user, "app_id": "", "audience": AUDIENCE, "user_type": "account"}
        for user in users
    ]
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:

        async def worker(index: int, deadline: float, record: bool) -> None:
            nonlocal failures
            body = bodies[index % len(bodies)]
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await client.post(ISSUE_TOKEN_PATH, json=body, headers=headers)
                if record:
                    latencies.append(time.perf_counter() - start)
                    failures += response.status_code != 200

        async def run(duration: float, record: bool) -> float:
            start = time.perf_counter()
            async with anyio.create_task_group() as group:
                for index in range(clients):
                    group.start_soon(worker, index, start + duration, record)
            return time.perf_counter() - start

        await run(min(0.5, seconds / 4), record=False)  # warm-up: connections open, caches filled
        issuer_cpu = process_cpu_seconds(pid)
        own_cpu = time.process_time()
        elapsed = await run(seconds, record=True)
        issuer_cpu_after = process_cpu_seconds(pid)
        own_cpu_after = time.process_time()
    return {
        "rate": len(latencies) / elapsed,
        "p50": median(latencies),
        "p99": percentile(latencies, 99),
        "failures": failures,
        "requests": len(latencies),
        "issuer_cpu": None
        if issuer_cpu is None or issuer_cpu_after is None
        else (issuer_cpu_after - issuer_cpu) / elapsed,
        "own_cpu": (own_cpu_after - own_cpu) / elapsed,
    }


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    users = [f"bench-user-{n}" for n in range(max(args.clients))]
    signing: dict[str, float] = {}
    rows: list[list[object]] = []
    commands: set[str] = set()
    failures = 0
    for alg in args.algs:
        signing[alg] = raw_signing_rate(alg, args.sign_seconds)
        secret = secrets.token_urlsafe(24)
        with issuer_process(alg, secret) as issuer:
            commands.add(issuer.command.replace(alg, "ALG"))
            with AdminClient(issuer.url, secret) as admin:
                for user in users:
                    admin.create_user(TENANT, user, email=f"{user}@example.com", name=user)
                    admin.grant(TENANT, user)
            for clients in args.clients:
                level = anyio.run(measure_level, issuer.url, secret, issuer.pid, users, clients, args.seconds)
                failures += level["failures"]
                rows.append(
                    [
                        alg,
                        clients,
                        f"{level['rate']:.0f}",
                        ms(level["p50"]),
                        ms(level["p99"]),
                        level["failures"],
                        percent(level["issuer_cpu"]),
                        percent(level["own_cpu"]),
                        f"{level['rate'] / signing[alg]:.2f}",
                    ]
                )

    print(f"## Issuer throughput: issue-token ({machine_summary()})")
    print()
    print(
        "The issuer runs in a separate process (" + "; ".join(sorted(commands)) + "), so it does not\n"
        "share the load generator's GIL; the generator (httpx.AsyncClient, one keep-alive connection per\n"
        f"client) runs here. {args.seconds:g} s measured per level after a warm-up; every request mints a\n"
        "new token for one of the pre-created users. CPU columns: CPU seconds per wall second of the\n"
        "issuer process and of this generator (100% = one core). 'mint / raw sign' = issue-token req/s\n"
        "divided by raw PyJWT signing ops/s measured in this run."
    )
    print()
    print(
        markdown_table(
            [
                "alg",
                "clients",
                "req/s",
                "p50 ms",
                "p99 ms",
                "non-200",
                "issuer CPU",
                "generator CPU",
                "mint / raw sign",
            ],
            rows,
        )
    )
    print()
    print(
        markdown_table(
            ["alg", "raw PyJWT jwt.encode ops/s (1 thread)", "us per signature"],
            [[alg, f"{rate:.0f}", f"{1e6 / rate:.0f}"] for alg, rate in signing.items()],
        )
    )
    print()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
