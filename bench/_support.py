"""Shared by the benchmarks: statistics, markdown tables and child processes that serve on loopback.

Benchmarks put the servers in a child process so the load generator and the code under
measurement do not share one GIL; the child prints one line saying where it listens, and
the parent waits for that line (and a readiness probe) with a deadline instead of sleeping.
"""

from __future__ import annotations

import json
import math
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


def percentile(samples: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100) with linear interpolation between closest ranks."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table, columns padded so it also reads well in a terminal."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(row) for row in cells[1:])])


def machine_summary() -> str:
    """The machine, and its load average: other work on the same cores shows up in every figure."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), "
        f"Python {platform.python_version()}, load average {load}"
    )


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass
class ChildProcess:
    """A child started by `spawn`; `first_line` is the line it announced itself with."""

    process: subprocess.Popen[str]
    first_line: str

    @property
    def pid(self) -> int:
        return self.process.pid


def _collect(stream: object, log: deque[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        log.append(line.rstrip("\n"))


def _pump(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line.rstrip("\n"))
    lines.put(None)


@contextmanager
def spawn(
    argv: Sequence[str],
    *,
    announces: Callable[[str], bool],
    env: dict[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[ChildProcess]:
    """Run `argv` with its stdio piped; yield once a stdout line satisfies `announces`.

    Its output keeps being drained (so it never blocks on a full pipe); its stderr is shown only
    if it exits before it is ready.

    Closing the child's stdin is the polite stop signal (children here exit on EOF); then it
    is terminated, and killed if it does not go within a few seconds.
    """
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO_DIR,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    log: deque[str] = deque(maxlen=30)
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    threading.Thread(target=_collect, args=(process.stderr, log), daemon=True).start()
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{argv[1:]} did not announce itself within {startup_timeout:.0f} s")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                status = process.wait()
                raise RuntimeError(f"{argv[1:]} exited with {status} before it was ready:\n" + "\n".join(log))
            if announces(line):
                break
        yield ChildProcess(process=process, first_line=line)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None:
        with suppress(OSError):
            process.stdin.close()
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_until_serving(url: str, *, timeout: float = 30.0) -> None:
    """Poll `url` until it answers 200, within `timeout` seconds (bounded, short intervals)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")
            time.sleep(0.05)  # polling interval of a bounded readiness probe, not synchronisation


@dataclass(frozen=True)
class IssuerProcess:
    url: str
    secret: str = field(repr=False)
    pid: int
    command: str


@contextmanager
def issuer_process(
    alg: str, secret: str, admin_secret: str, *, token_ttl: int = 300
) -> Iterator[IssuerProcess]:
    """`python -m harness issuer` on a free loopback port in its own process (own GIL), ready to serve."""
    options = ["--port", "0", "--alg", alg, "--token-ttl", str(token_ttl)]
    argv = [sys.executable, "-m", "harness", "issuer", *options]
    env = {"MCP_IDFWD_ISSUER_SECRET": secret, "MCP_IDFWD_ADMIN_SECRET": admin_secret}
    with spawn(argv, announces=lambda line: line.startswith("issuer:"), env=env) as child:
        url = child.first_line.split(":", 1)[1].strip()
        wait_until_serving(url + "/.well-known/openid-configuration")
        yield IssuerProcess(
            url=url, secret=secret, pid=child.pid, command="python -m harness issuer " + " ".join(options)
        )


@dataclass(frozen=True)
class ServersProcess:
    """What `bench/_servers.py` started: issuer, forwarding MCP server and the no-auth baseline."""

    issuer_url: str
    server_url: str
    baseline_url: str
    baseline_subject: str
    secret: str = field(repr=False)
    admin_secret: str = field(repr=False)
    pid: int


@contextmanager
def servers_process() -> Iterator[ServersProcess]:
    argv = [sys.executable, str(BENCH_DIR / "_servers.py")]
    with spawn(argv, announces=lambda line: line.startswith("{")) as child:
        announced = json.loads(child.first_line)
        yield ServersProcess(
            issuer_url=announced["issuer_url"],
            server_url=announced["server_url"],
            baseline_url=announced["baseline_url"],
            baseline_subject=announced["baseline_subject"],
            secret=announced["secret"],
            admin_secret=announced["admin_secret"],
            pid=child.pid,
        )
