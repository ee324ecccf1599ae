"""`mcp-idfwd bench`: run the benchmarks in bench/ one after another and print their tables."""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
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
    parser.add_argument(
        "--results",
        metavar="FILE",
        type=Path,
        help="also write the tables to FILE (markdown), headed by the command, commit and machine",
    )
    parser.set_defaults(run=run)


def _run_one(command: list[str], cwd: Path) -> tuple[int, str]:
    """Run a benchmark, echoing its output as it comes; return its exit status and output."""
    lines: list[str] = []
    # Our own scripts, run with the interpreter that runs us.
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, text=True) as process:  # noqa: S603
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return process.returncode, "".join(lines)


def _commit(cwd: Path) -> str:
    try:
        found = subprocess.run(
            ["git", "describe", "--always", "--dirty"],  # noqa: S607 -- git from PATH, read-only query
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return found.stdout.strip() or "unknown"


def _results_document(argv: list[str], outputs: list[tuple[str, str]], cwd: Path) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "# Benchmark results",
        "",
        "Produced by:",
        "",
        "```",
        shlex.join(["mcp-idfwd", "bench", *argv]),
        "```",
        "",
        f"at commit `{_commit(cwd)}` on {when}; {platform.system()} {platform.machine()},"
        f" Python {platform.python_version()}. Figures vary from run to run and machine to machine;"
        " compare columns within one run.",
        "",
    ]
    sections = [f"## bench/{name}.py\n\n{output.strip()}\n" for name, output in outputs]
    return "\n".join(header) + "\n" + "\n".join(sections)


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
    outputs: list[tuple[str, str]] = []
    for name in args.names or list(BENCHMARKS):
        script = directory / f"{name}.py"
        if not script.is_file():
            print(f"mcp-idfwd bench: {script} is missing", file=sys.stderr)
            outcomes.append((name, 2, 0.0))
            continue
        command = [sys.executable, str(script), *(BENCHMARKS[name] if args.quick else ())]
        print(f"$ python bench/{name}.py {shlex.join(command[2:])}".rstrip(), flush=True)
        start = time.monotonic()
        status, output = _run_one(command, directory.parent)
        outcomes.append((name, status, time.monotonic() - start))
        outputs.append((name, output))
    print("benchmark            exit   seconds")
    for name, status, seconds in outcomes:
        print(f"{name:<20} {status:>4}   {seconds:7.1f}")
    if args.results is not None:
        argv = [*args.names, *(["--quick"] if args.quick else []), "--results", str(args.results)]
        args.results.write_text(_results_document(argv, outputs, directory.parent), encoding="utf-8")
        print(f"results written to {args.results}")
    return 0 if all(status == 0 for _, status, _ in outcomes) else 1
