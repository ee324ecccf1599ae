"""Issuer throughput: issue-token requests per second and latency at 1, 16 and 64 concurrent clients.

    python bench/issuer_throughput.py [--algs RS256 ES256 EdDSA] [--clients 1 16 64] [--seconds 3]
                                     [--repeats 3] [--workers 2] [--quick] [--json-out PATH]

For each algorithm four issuers run side by side, each in its own process (so this load
generator does not share their GIL), and are loaded over keep-alive HTTP connections, one per
concurrent client:
- `today`: one process, issue-token signing in a worker thread (the code path before issue 12);
- `inline`: one process, signing inline on the event loop;
- `workers_N`: `--workers N` processes on one port and one database, signing as `auto` picks;
- `workers_N_access_log`: the same with the access log on (the issuer's default `--log-level
  info`); the three above run with `warning`, as the issuer ran (with no access log) before.
Levels are measured in `--repeats` interleaved rounds (every mode at a level, the mode that goes
first rotating, before the next level), so drift and noisy neighbours hurt every mode alike;
figures are the median across repeats (rates also the best), ratios are paired repeat by repeat.
In the same run, raw signing throughput (PyJWT `jwt.encode` of the same claims and header, one
thread, with a key of the same type and size as the issuer's) gives the ceiling of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
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
    process_tree_cpu_seconds,
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
    # Ed25519 is EdDSA's signature under RFC 9864's name: measured on request, not by default.
    parser.add_argument("--algs", nargs="+", choices=SIGNING_ALGORITHMS, default=["RS256", "ES256", "EdDSA"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 16, 64], help="concurrency levels")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per level (default 3)")
    parser.add_argument("--sign-seconds", type=float, default=2.0, help="raw signing seconds (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per level (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the workers mode")
    parser.add_argument(
        "--compare-sharing",
        action="store_true",
        help="also run the workers with one shared listening socket (workers_N_shared) beside SO_REUSEPORT",
    )
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
    # PyJWT knows RFC 9864's Ed25519 only as EdDSA, which is the signature the issuer computes.
    alg = "EdDSA" if alg == "Ed25519" else alg
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
    before = worker_sockets(pid)
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
        # Connections each worker accepted (all have been answered by now): how evenly they spread.
        spread = sorted(
            (count - before.get(child, 0) for child, count in worker_sockets(pid).items()), reverse=True
        )
        issuer_cpu = process_tree_cpu_seconds(pid)
        own_cpu = time.process_time()
        elapsed = await run(seconds, record=True)
        issuer_cpu_after = process_tree_cpu_seconds(pid)
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
        "spread": spread,
    }


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def modes(workers: int, db_dir: Path, compare_sharing: bool) -> dict[str, list[str]]:
    """Each mode's extra issuer options: today's code path, inline signing, and N workers.

    All run without the access log (`--log-level warning`), as the issuer ran when issue 12 was
    filed; the `..._access_log` mode adds it (the issuer's default, `info`) to show its cost.
    """
    quiet = ["--log-level", "warning"]
    many = ["--workers", str(workers)]
    chosen = {
        "today": ["--signing-mode", "threadpool", *quiet],
        "inline": ["--signing-mode", "inline", *quiet],
        f"workers_{workers}": [*many, "--db", str(db_dir / "workers.db"), *quiet],
        f"workers_{workers}_access_log": [*many, "--db", str(db_dir / "logged.db"), "--log-level", "info"],
    }
    if compare_sharing:
        shared = [*many, "--db", str(db_dir / "shared.db"), "--socket-sharing", "shared", *quiet]
        chosen[f"workers_{workers}_shared"] = shared
    return chosen


def _sockets(pid: int) -> int:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    names = []
    for fd in fds:
        with contextlib.suppress(OSError):
            names.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return sum(name.startswith("socket:") for name in names)


def worker_sockets(pid: int) -> dict[int, int]:
    """Open sockets of each worker process of issuer `pid` (none for a single-process issuer)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return {}
    return {int(child): _sockets(int(child)) for child in children}


def _median_of(levels: list[dict[str, Any]], name: str) -> float:
    return median([level[name] for level in levels])


async def measure_modes(
    issuers: dict[str, Any], secret: str, users: list[str], args: argparse.Namespace
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Every (mode, clients) level measured once per repeat, the modes taking turns within a level."""
    names = list(issuers)
    measured: dict[tuple[str, int], list[dict[str, Any]]] = {
        (name, clients): [] for name in names for clients in args.clients
    }
    turn = 0
    for _ in range(args.repeats):
        for clients in args.clients:
            shift = turn % len(names)
            turn += 1
            for name in names[shift:] + names[:shift]:
                issuer = issuers[name]
                level = await measure_level(issuer.url, secret, issuer.pid, users, clients, args.seconds)
                measured[name, clients].append(level)
    return measured


def paired(levels: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> float:
    """Rate ÷ the baseline's rate, repeat by repeat (both measured back to back), the median."""
    return median([level["rate"] / base["rate"] for level, base in zip(levels, baseline, strict=True)])


def report_mode(
    report: Report,
    alg: str,
    mode: str,
    clients: int,
    levels: list[dict[str, Any]],
    today: list[dict[str, Any]],
) -> list[object]:
    """The figures of one (alg, mode, clients) level over its repeats, and its table row."""
    about = f"{alg}, {mode}, {clients} client{'s' if clients > 1 else ''}"
    prefix = f"{alg}.{mode}.clients_{clients}"
    rate, p50, p99 = (_median_of(levels, name) for name in ("rate", "p50", "p99"))
    failures = sum(level["failures"] for level in levels)
    # The README shows the goals' figures: ES256 at 16 clients, both ways; workers' ratios and p99.
    headline = mode in ("today", "workers_2") and clients == 16 and alg == "ES256"
    report.add(
        f"{prefix}.requests", sum(level["requests"] for level in levels), "count", label=f"requests, {about}"
    )
    report.add(
        f"{prefix}.rate",
        rate,
        "req/s",
        label=f"issue-token req/s (median of repeats), {about}",
        headline=headline,
    )
    report.add(f"{prefix}.p50", p50 * 1e3, "ms", label=f"issue-token p50, {about}")
    report.add(
        f"{prefix}.p99",
        p99 * 1e3,
        "ms",
        label=f"issue-token p99, {about}",
        headline=mode == "workers_2" and clients >= 64,
    )
    report.add(f"{prefix}.non_200", failures, "count", label=f"non-200 answers, {about}")
    ratio = paired(levels, today)
    if mode != "today":
        report.add(
            f"{prefix}.over_today",
            ratio,
            "x",
            label=f"req/s ÷ today's path, paired, {about}",
            headline=mode == "workers_2" and clients == 16,
        )
    cpu = [level["issuer_cpu"] for level in levels if level["issuer_cpu"] is not None]
    issuer_cpu = median(cpu) if cpu else None
    per_request = "n/a" if issuer_cpu is None or not rate else f"{issuer_cpu / rate * 1e6:.0f}"
    rates = [level["rate"] for level in levels]
    return [
        alg,
        mode,
        clients,
        f"{max(rates):.0f} / {rate:.0f}",
        "-" if mode == "today" else f"{ratio:.2f}",
        ms(p50),
        ms(p99),
        failures,
        percent(issuer_cpu),
        per_request,
        percent(_median_of(levels, "own_cpu")),
        " ".join("/".join(map(str, level["spread"])) for level in levels) or "-",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    users = [f"bench-user-{n}" for n in range(max(args.clients))]
    signing: dict[str, float] = {}
    rows: list[list[object]] = []
    report = Report("issuer_throughput")
    failures = 0
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="issuer-bench-") as tmp:
        for alg in args.algs:
            signing[alg] = raw_signing_rate(alg, args.sign_seconds)
            report.add(
                f"{alg}.raw_sign", signing[alg], "ops/s", label=f"raw PyJWT jwt.encode, one thread, {alg}"
            )
            secret, admin_secret = secrets.token_hex(24), secrets.token_hex(24)
            with ExitStack() as stack:
                issuers = {}
                for name, options in modes(args.workers, Path(tmp) / alg, args.compare_sharing).items():
                    (Path(tmp) / alg).mkdir(exist_ok=True)
                    issuers[name] = stack.enter_context(
                        issuer_process(alg, secret, admin_secret, options=options)
                    )
                    with AdminClient(issuers[name].url, admin_secret) as admin:
                        for user in users:
                            admin.create_user(TENANT, user, email=f"{user}@example.com", name=user)
                            admin.grant(TENANT, user)
                measured = asyncio.run(measure_modes(issuers, secret, users, args))
            for clients in args.clients:
                for name in issuers:
                    levels = measured[name, clients]
                    failures += sum(level["failures"] for level in levels)
                    rows.append(report_mode(report, alg, name, clients, levels, measured["today", clients]))
    load_after = os.getloadavg()

    print(f"### Issuer throughput: issue-token ({machine_summary()})")
    print()
    print(
        "Four issuers per alg, each in its own process: `today` (one process, signing in a thread\n"
        "pool: the code path before issue 12), `inline` (one process, signing on the event loop),\n"
        f"`workers_{args.workers}` (`--workers {args.workers}`, signing as `auto` picks), all three\n"
        "without the access log (`--log-level warning`, as when issue 12 was filed), and\n"
        f"`workers_{args.workers}_access_log`: the same workers with it (`info`, the default; its\n"
        "lines go to a file). The generator\n"
        "(asyncio, one keep-alive HTTP/1.1 connection per client, minimal HTTP as wrk speaks it) runs\n"
        f"here. {args.seconds:g} s measured per level after a warm-up, {args.repeats} interleaved repeats\n"
        "(the modes take turns at each level, the first one rotating). req/s: best / median of the\n"
        "repeats; 'x today': req/s ÷ today's, paired repeat by repeat (median); p50/p99: median of the\n"
        "repeats. CPU columns: CPU seconds per wall second of the issuer's processes and of this\n"
        "generator (100% = one core). Connections per worker: how the kernel spread each repeat's\n"
        "connections over the workers.\n"
        f"1-minute load average {load_before[0]:.2f} before, {load_after[0]:.2f} after."
    )
    print()
    print(
        markdown_table(
            [
                "alg",
                "mode",
                "clients",
                "req/s",
                "x today",
                "p50 ms",
                "p99 ms",
                "non-200",
                "issuer CPU",
                "issuer CPU us/req",
                "generator CPU",
                "connections per worker",
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
