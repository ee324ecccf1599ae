"""`mcp-idfwd bench`: run the benchmarks in bench/ one after another and print their tables."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.commands._bench_figures import FiguresUnreadable, headline_table, read_figures


@dataclass(frozen=True)
class Benchmark:
    """A script in bench/: the arguments that make it a short run, and whether it writes figures."""

    quick: tuple[str, ...] = ("--quick",)
    # Takes `--json-out PATH` (bench/_support.py `Report`); one that does not has no figures.
    writes_figures: bool = True


BENCHMARKS: dict[str, Benchmark] = {
    "e2e_overhead": Benchmark(),
    "issuer_throughput": Benchmark(),
    "modes": Benchmark(),
    "single_flight": Benchmark(),
    "token_cache": Benchmark(),
    "verify": Benchmark(),
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
        help="also write the tables to FILE (markdown), headed by the command, commit and machine"
        " and the headline figures (bench/readme_figures.py copies those into the README)",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        type=Path,
        help="also write every figure to FILE as JSON: one object per benchmark, each figure with"
        " name, unit, value and, where sampled, its samples' min, median, p95 and n",
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


def _machine() -> str:
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {os.cpu_count()} CPU(s), Python {platform.python_version()}"


def _results_document(
    argv: list[str], outputs: list[tuple[str, str]], benchmarks: list[dict[str, Any]], cwd: Path
) -> str:
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
        f"at commit `{_commit(cwd)}` on {when}; {_machine()}. Figures vary from run to run and"
        " machine to machine; compare columns within one run.",
        "",
        "## Headline figures",
        "",
        headline_table(benchmarks),
        "",
    ]
    sections = [f"## bench/{name}.py\n\n{output.strip()}\n" for name, output in outputs if output.strip()]
    return "\n".join(header) + "\n" + "\n".join(sections)


def _json_document(argv: list[str], benchmarks: list[dict[str, Any]], cwd: Path) -> str:
    document = {
        "command": ["mcp-idfwd", "bench", *argv],
        "commit": _commit(cwd),
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "benchmarks": benchmarks,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _run_benchmark(name: str, directory: Path, quick: bool, scratch: Path) -> dict[str, Any]:
    """Run one benchmark script; its outcome, figures included, as the JSON object for it."""
    benchmark = BENCHMARKS[name]
    script = directory / f"{name}.py"
    outcome: dict[str, Any] = {"name": name, "script": f"bench/{name}.py", "figures": []}
    if not script.is_file():
        print(f"mcp-idfwd bench: {script} is missing", file=sys.stderr)
        return outcome | {"argv": [], "exit_status": 2, "seconds": 0.0, "output": ""}
    argv = list(benchmark.quick if quick else ())
    print(f"$ python bench/{name}.py {shlex.join(argv)}".rstrip(), flush=True)
    figures_file = scratch / f"{name}.json"
    extra = ["--json-out", str(figures_file)] if benchmark.writes_figures else []
    start = time.monotonic()
    status, output = _run_one([sys.executable, str(script), *argv, *extra], directory.parent)
    outcome |= {"argv": argv, "exit_status": status, "seconds": round(time.monotonic() - start, 1)}
    if benchmark.writes_figures and status == 0:
        try:
            outcome["figures"] = read_figures(figures_file, name)
        except FiguresUnreadable as exc:
            print(f"mcp-idfwd bench: {exc}", file=sys.stderr)
            outcome["exit_status"] = 1
    return outcome | {"output": output}


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
    names = args.names or list(BENCHMARKS)
    with tempfile.TemporaryDirectory(prefix="mcp-idfwd-bench-") as scratch:
        outcomes = [_run_benchmark(name, directory, args.quick, Path(scratch)) for name in names]
    print("benchmark            exit   seconds   figures")
    for outcome in outcomes:
        print(
            f"{outcome['name']:<20} {outcome['exit_status']:>4}   {outcome['seconds']:7.1f}"
            f"   {len(outcome['figures']):7d}"
        )
    argv = [*args.names, *(["--quick"] if args.quick else [])]
    argv += [*(["--results", str(args.results)] if args.results else [])]
    argv += [*(["--json", str(args.json)] if args.json else [])]
    outputs = [(outcome["name"], outcome.pop("output")) for outcome in outcomes]
    if args.results is not None:
        document = _results_document(argv, outputs, outcomes, directory.parent)
        args.results.write_text(document, encoding="utf-8")
        print(f"results written to {args.results}")
    if args.json is not None:
        args.json.write_text(_json_document(argv, outcomes, directory.parent), encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0 if all(outcome["exit_status"] == 0 for outcome in outcomes) else 1
