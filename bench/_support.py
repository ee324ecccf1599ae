"""Shared by the benchmarks: measuring, statistics, structured output, markdown tables, child servers.

Measuring (`interleave`): give it the modes to compare, each a zero-argument callable (sync, or
returning an awaitable) that performs one operation::

    measured = await interleave({"on": call_on, "off": call_off}, n=200, repeats=3)
    measured["on"].median            # seconds per operation, median of the repeats' medians

Every mode is timed in `repeats` repeats of `n` samples; each sample times `batch` consecutive
operations and divides by `batch` (batch 1 for latencies; a larger batch for micro-benchmarks
whose operation is too short to time alone). Within a repeat the modes take turns
sample by sample, and the mode that goes first rotates, so drift and a noisy neighbour hurt
every mode alike (`paired_ratio` compares two modes repeat by repeat). A figure is reported as
**min/median across repeats**: `best` is the lowest repeat median, `median` the median of the
repeat medians; `p95` is that of all samples pooled. Latency figures use n >= 200 per repeat
and repeats >= 3 (`--quick` runs may use less: rough figures).
Operations that need fresh input each time draw it from an iterator (`next(tokens)`). Checking
that an operation succeeded belongs in the operation (raise on failure), so a failing mode cannot
look fast.

Structured output (`Report`): a benchmark script calls `add_json_out_argument(parser)`, collects
its figures in a `Report` (`report.add(...)` for a single value, `report.measured(...)` for a
`Measurement`), and calls `report.write(args.json_out)` at the end. `mcp-idfwd bench` passes
`--json-out PATH` to each script and gathers the files into `--json FILE` and the "Headline
figures" table of `--results FILE` (a script that does not take `--json-out` yet is marked
`writes_figures=False` in harness/commands/bench.py). A figure is `name` (dotted, stable, unique
within its benchmark, e.g. `ES256.ours_fresh`), `label` (for people), `unit`, `value`,
`headline` (whether the README shows it) and, when it was measured, `samples`: the raw samples'
`min`, `median`, `p95` and `n`, plus `repeats`, `batch` and the per-repeat medians
(`repeat_medians`), all in the figure's unit.

Benchmarks put the servers in a child process so the load generator and the code under
measurement do not share one GIL; the child prints one line saying where it listens, and
the parent waits for that line (and a readiness probe) with a deadline instead of sleeping.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


# Seconds to the units figures are given in.
UNIT_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6}


@dataclass(frozen=True)
class Measurement:
    """Seconds per operation of one mode: `repeats[r][i]` is sample `i` of repeat `r`.

    Each sample is the mean over `batch` consecutive operations (1: each operation timed alone).
    """

    repeats: tuple[tuple[float, ...], ...]
    batch: int = 1

    @property
    def n(self) -> int:
        """Samples per repeat."""
        return min(len(samples) for samples in self.repeats)

    @property
    def repeat_medians(self) -> list[float]:
        return [median(samples) for samples in self.repeats]

    @property
    def best(self) -> float:
        """The lowest repeat median: the figure least disturbed by other work on the machine."""
        return min(self.repeat_medians)

    @property
    def median(self) -> float:
        """The median of the repeat medians."""
        return median(self.repeat_medians)

    @property
    def pooled(self) -> list[float]:
        return [sample for samples in self.repeats for sample in samples]

    @property
    def p95(self) -> float:
        """The p95 of all samples (a p95 of one repeat's few hundred samples moves too much alone)."""
        return percentile(self.pooled, 95)

    def samples_summary(self, unit: str) -> dict[str, Any]:
        """The raw samples pooled over all repeats, in `unit`, as figures carry them in JSON."""
        scale = UNIT_SCALE[unit]
        pooled = self.pooled
        return {
            "min": min(pooled) * scale,
            "median": median(pooled) * scale,
            "p95": self.p95 * scale,
            "n": len(pooled),
            "repeats": len(self.repeats),
            "batch": self.batch,
            "repeat_medians": [value * scale for value in self.repeat_medians],
        }


Operation = Callable[[], object]


def operations_per_mode(*, n: int, repeats: int, batch: int = 1, warmup: int = 10) -> int:
    """How many times `interleave` calls each operation: the fresh inputs a mode needs."""
    return warmup + n * repeats * batch


async def interleave(
    operations: Mapping[str, Operation],
    *,
    n: int = 200,
    repeats: int = 3,
    batch: int = 1,
    warmup: int = 10,
) -> dict[str, Measurement]:
    """Time each mode's operation in `repeats` repeats of `n` samples, the modes taking turns.

    An operation is a zero-argument callable; if it returns an awaitable, that is awaited (inside
    the timing). `warmup` unmeasured calls per mode come first. Within a repeat, sample `i` of
    every mode is taken before sample `i + 1` of any, and the mode that goes first rotates.
    The garbage collector stays on: collections are part of what an operation costs.
    """
    if n < 1 or repeats < 1 or batch < 1 or warmup < 1:
        raise ValueError("n, repeats, batch and warmup must each be at least 1")
    names = list(operations)
    awaits: dict[str, bool] = {}
    for name in names:
        for _ in range(warmup):
            result = operations[name]()
            awaits[name] = inspect.isawaitable(result)
            if awaits[name]:
                await result  # type: ignore[misc]
    timings: dict[str, list[list[float]]] = {name: [[] for _ in range(repeats)] for name in names}
    clock = time.perf_counter
    turn = 0
    for repeat in range(repeats):
        for _ in range(n):
            shift = turn % len(names)
            turn += 1
            for name in names[shift:] + names[:shift]:
                operation = operations[name]
                if awaits[name]:
                    start = clock()
                    for _ in range(batch):
                        await operation()  # type: ignore[misc]
                    elapsed = clock() - start
                else:
                    start = clock()
                    for _ in range(batch):
                        operation()
                    elapsed = clock() - start
                timings[name][repeat].append(elapsed / batch)
    return {name: Measurement(tuple(tuple(samples) for samples in timings[name]), batch) for name in names}


def paired_ratio(numerator: Measurement, denominator: Measurement) -> float:
    """numerator ÷ denominator for two modes measured in the same `interleave` call.

    The ratio is taken repeat by repeat (median ÷ median) and the median of those is returned:
    a disturbance that slows one repeat slows both modes in it, so it cancels in that repeat's ratio.
    """
    if len(numerator.repeats) != len(denominator.repeats):
        raise ValueError("paired_ratio needs two measurements from the same interleave() call")
    pairs = zip(numerator.repeat_medians, denominator.repeat_medians, strict=True)
    return median([top / bottom for top, bottom in pairs])


def min_median(measurement: Measurement, unit: str, digits: int = 2) -> str:
    """A table cell "best / median" (across repeats) in `unit`."""
    scale = UNIT_SCALE[unit]
    return f"{measurement.best * scale:.{digits}f} / {measurement.median * scale:.{digits}f}"


@dataclass(frozen=True)
class Figure:
    """One reported number; `samples` is the raw samples' summary when it was measured."""

    name: str
    label: str
    unit: str
    value: float
    headline: bool = False
    samples: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "unit": self.unit,
            "value": self.value,
            "headline": self.headline,
            "samples": self.samples,
        }


class Report:
    """The figures one benchmark run found, written as JSON for `mcp-idfwd bench` (`--json-out`)."""

    def __init__(self, benchmark: str) -> None:
        self.benchmark = benchmark
        self.figures: list[Figure] = []

    def add(self, name: str, value: float, unit: str, *, label: str, headline: bool = False) -> Figure:
        """A figure that is one number (a rate, a ratio, a count)."""
        return self._append(Figure(name=name, label=label, unit=unit, value=float(value), headline=headline))

    def measured(
        self, name: str, measurement: Measurement, unit: str, *, label: str, headline: bool = False
    ) -> Figure:
        """A figure from a `Measurement`: value = median of the repeat medians, in `unit`."""
        figure = Figure(
            name=name,
            label=label,
            unit=unit,
            value=measurement.median * UNIT_SCALE[unit],
            headline=headline,
            samples=measurement.samples_summary(unit),
        )
        return self._append(figure)

    def _append(self, figure: Figure) -> Figure:
        if any(known.name == figure.name for known in self.figures):
            raise ValueError(f"figure {figure.name!r} reported twice")
        self.figures.append(figure)
        return figure

    def as_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "figures": [figure.as_json() for figure in self.figures]}

    def write(self, path: Path | None) -> None:
        """Write the figures to `path` (nothing when None: the script ran without `--json-out`)."""
        if path is not None:
            path.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")


def add_json_out_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json-out",
        metavar="PATH",
        type=Path,
        help="also write the figures as JSON to PATH (mcp-idfwd bench --json collects these)",
    )


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


def process_tree_cpu_seconds(pid: int) -> float | None:
    """CPU time of `pid` and its children (an issuer's worker processes), Linux /proc."""
    total = process_cpu_seconds(pid)
    if total is None:
        return None
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(process_cpu_seconds(int(child)) or 0.0 for child in children)


@dataclass
class ChildProcess:
    """A child started by `spawn`; `first_line` is the line it announced itself with."""

    process: subprocess.Popen[str]
    first_line: str

    @property
    def pid(self) -> int:
        return self.process.pid


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
    """Run `argv`; yield once a line of its stdout satisfies `announces`.

    Its stdout keeps being drained (so it never blocks on a full pipe). Its stderr (a server's
    access log, one line a request) goes to a file, as a deployed server's would, not into a pipe
    drained here: draining it would cost this process (the load generator) CPU and GIL time per
    request measured. The file's end is shown if the child exits before it is ready.

    Closing the child's stdin is the polite stop signal (children here exit on EOF); then it
    is terminated, and killed if it does not go within a few seconds.
    """
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=REPO_DIR,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
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
                    stderr.seek(0)
                    log = "\n".join(deque(stderr.read().splitlines(), maxlen=30))
                    raise RuntimeError(f"{argv[1:]} exited with {status} before it was ready:\n{log}")
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
    alg: str, secret: str, admin_secret: str, *, token_ttl: int = 300, options: Sequence[str] = ()
) -> Iterator[IssuerProcess]:
    """`python -m harness issuer` on a free loopback port in its own process (own GIL), ready to serve.

    `options` are more command-line options (`--workers 2 --db FILE`, `--signing-mode inline`).
    """
    options = ["--port", "0", "--alg", alg, "--token-ttl", str(token_ttl), *options]
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
