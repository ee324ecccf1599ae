"""Issuer throughput: issue-token requests per second and latency at 1, 16 and 64 concurrent clients.

    python bench/issuer_throughput.py [--algs RS256 ES256 EdDSA] [--clients 1 16 64] [--seconds 3] [--quick]
                                     [--json-out PATH]

For each algorithm the issuer runs in its own process (so this load generator does not share
its GIL) and is loaded over keep-alive HTTP connections, one per concurrent client. In the same
run, raw signing throughput (PyJWT `jwt.encode` of the same claims and header, one thread, with
a key of the same type and size as the issuer's) gives the ceiling: mint throughput is reported
as a fraction of it. The issuer signs on one core at a time (one Python process), so a fraction
close to 1 means the issuer spends its time signing, not in HTTP, JSON or storage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
from _support import (
    Report,
    add_json_out_argument,
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
    add_json_out_argument(parser)
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


class KeepAliveConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for a JSON POST (as wrk does).

    httpx.AsyncClient's connection pool costs more CPU per request than the issuer does at 16+
    concurrent connections, so with it the figures would measure httpx; this is the lean way.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str) -> KeepAliveConnection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """Send one complete request; read the whole response; return its status."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("response without Content-Length")
        await self._reader.readexactly(length)
        return status

    def close(self) -> None:
        self._writer.close()


def issue_token_request(url: str, secret: str, user_id: str) -> bytes:
    body = json.dumps(
        {"tenant_id": TENANT, "user_id": user_id, "app_id": "", "audience": AUDIENCE, "user_type": "account"}
    ).encode()
    head = (
        f"POST {ISSUE_TOKEN_PATH} HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        f"{SECRET_HEADER}: {secret}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def measure_level(
    url: str, secret: str, pid: int, users: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    requests = [issue_token_request(url, secret, user) for user in users]
    connections = [await KeepAliveConnection.open(url) for _ in range(clients)]
    latencies: list[float] = []
    failures = 0

    async def worker(index: int, deadline: float, record: bool) -> None:
        nonlocal failures
        connection, request = connections[index], requests[index % len(requests)]
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status = await connection.send(request)
            if record:
                latencies.append(time.perf_counter() - start)
                failures += status != 200

    async def run(duration: float, record: bool) -> float:
        start = time.perf_counter()
        await asyncio.gather(*(worker(index, start + duration, record) for index in range(clients)))
        return time.perf_counter() - start

    try:
        await run(min(0.5, seconds / 4), record=False)  # warm-up
        issuer_cpu = process_cpu_seconds(pid)
        own_cpu = time.process_time()
        elapsed = await run(seconds, record=True)
        issuer_cpu_after = process_cpu_seconds(pid)
        own_cpu_after = time.process_time()
    finally:
        for connection in connections:
            connection.close()
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


def cpu_per_request(level: dict[str, Any]) -> str:
    """Issuer CPU time per issue-token request, to set beside the time one signature takes."""
    cpu = level["issuer_cpu"]
    return "n/a" if cpu is None or not level["rate"] else f"{cpu / level['rate'] * 1e6:.0f}"


def report_level(report: Report, alg: str, clients: int, level: dict[str, Any], signing: float) -> None:
    """One load level's figures; its latencies come from one run of `requests` requests."""
    about = f"{alg}, {clients} client{'s' if clients > 1 else ''}"
    prefix = f"{alg}.clients_{clients}"
    report.add(f"{prefix}.requests", level["requests"], "count", label=f"requests measured, {about}")
    report.add(f"{prefix}.rate", level["rate"], "req/s", label=f"issue-token req/s, {about}", headline=True)
    report.add(f"{prefix}.p50", level["p50"] * 1e3, "ms", label=f"issue-token p50, {about}")
    report.add(
        f"{prefix}.p99", level["p99"] * 1e3, "ms", label=f"issue-token p99, {about}", headline=clients >= 64
    )
    report.add(f"{prefix}.non_200", level["failures"], "count", label=f"non-200 answers, {about}")
    report.add(f"{prefix}.over_raw_sign", level["rate"] / signing, "x", label=f"req/s ÷ raw signing, {about}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    users = [f"bench-user-{n}" for n in range(max(args.clients))]
    signing: dict[str, float] = {}
    rows: list[list[object]] = []
    report = Report("issuer_throughput")
    commands: set[str] = set()
    failures = 0
    for alg in args.algs:
        signing[alg] = raw_signing_rate(alg, args.sign_seconds)
        report.add(f"{alg}.raw_sign", signing[alg], "ops/s", label=f"raw PyJWT jwt.encode, one thread, {alg}")
        secret, admin_secret = secrets.token_hex(24), secrets.token_hex(24)
        with issuer_process(alg, secret, admin_secret) as issuer:
            commands.add(issuer.command.replace(alg, "ALG"))
            with AdminClient(issuer.url, admin_secret) as admin:
                for user in users:
                    admin.create_user(TENANT, user, email=f"{user}@example.com", name=user)
                    admin.grant(TENANT, user)
            for clients in args.clients:
                level = asyncio.run(
                    measure_level(issuer.url, secret, issuer.pid, users, clients, args.seconds)
                )
                failures += level["failures"]
                report_level(report, alg, clients, level, signing[alg])
                rows.append(
                    [
                        alg,
                        clients,
                        f"{level['rate']:.0f}",
                        ms(level["p50"]),
                        ms(level["p99"]),
                        level["failures"],
                        percent(level["issuer_cpu"]),
                        cpu_per_request(level),
                        percent(level["own_cpu"]),
                        f"{level['rate'] / signing[alg]:.2f}",
                    ]
                )

    print(f"### Issuer throughput: issue-token ({machine_summary()})")
    print()
    print(
        f"The issuer runs in a separate process ({'; '.join(sorted(commands))}), so it does not share\n"
        "the load generator's GIL; the generator (asyncio, one keep-alive HTTP/1.1 connection per client,\n"
        f"minimal HTTP as wrk speaks it) runs here. {args.seconds:g} s measured per level after a warm-up;\n"
        "every request mints a new token for one of the pre-created users. CPU columns: CPU seconds per\n"
        "wall second of the issuer process and of this generator (100% = one core), and issuer CPU per\n"
        "request, to compare with the us per signature below. 'mint / raw sign' =\n"
        "issue-token req/s divided by raw PyJWT signing ops/s (one thread) measured in this run."
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
                "issuer CPU us/req",
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
    report.write(args.json_out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
