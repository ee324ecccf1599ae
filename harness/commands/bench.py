"""`mcp-idfwd bench`: run the benchmarks in bench/ one after another and print their tables."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Each benchmark and the arguments that make it a short run (`--quick`).
BENCHMARKS: dict[str, tuple[str, ...]] = {
    "e2e_overhead": ("--quick",),
    "issuer_throughput": ("--quick",),
    "single_flight": ("--quick",),
    "verify": ("--rounds", "5"),
}


def bench_dir() -> Path:
    """bench/ of the source checkout this harness runs from (benchmarks are not installed)."""
    return Path(__file__).resolve().parents[2] / "bench"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run the benchmarks (bench/*.py) and print their tables",
        description="Run the benchmarks of bench/ in turn, each in its own Python process, and print"
        " their tables. They start their own servers on loopback ports.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--quick", action="store_true", help="short runs (rough figures, a few seconds each)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    directory = bench_dir()
    if not directory.is_dir():
        print(
            f"mcp-idfwd bench: no bench/ directory at {directory}; run it from a source checkout",
            file=sys.stderr,
        )
        return 2
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        known = ", ".join(BENCHMARKS)
        message = f"mcp-idfwd bench: unknown benchmark(s) {', '.join(unknown)}; choose from {known}"
        print(message, file=sys.stderr)
        return 2
    outcomes: list[tuple[str, int, float]] = []
    for name in args.names or list(BENCHMARKS):
        script = directory / f"{name}.py"
        if not script.is_file():
            print(f"mcp-idfwd bench: {script} is missing", file=sys.stderr)
            outcomes.append((name, 2, 0.0))
            continue
        command = [sys.executable, str(script), *(BENCHMARKS[name] if args.quick else ())]
        print(f"$ python bench/{name}.py {' '.join(command[2:])}".rstrip(), flush=True)
        start = time.monotonic()
        status = subprocess.run(command, cwd=directory.parent, check=False)  # noqa: S603 -- our own scripts.returncode
        outcomes.append((name, status, time.monotonic() - start))
    print("benchmark            exit   seconds")
    for name, status, seconds in outcomes:
        print(f"{name:<20} {status:>4}   {seconds:7.1f}")
    return 0 if all(status == 0 for _, status, _ in outcomes) else 1
