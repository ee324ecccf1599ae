"""The figures `mcp-idfwd bench` gathers from the benchmarks, as JSON and as the headline table.

A benchmark script writes `{"benchmark": NAME, "figures": [FIGURE, ...]}` (bench/_support.py
`Report`); a figure has `name`, `label`, `unit`, `value`, `headline` and `samples` (the raw
samples' `min`, `median`, `p95`, `n`, with `repeats`, `batch` and `repeat_medians`; null for a
figure that was not sampled). The headline table in RESULTS.md sits between the markers below;
bench/readme_figures.py copies it into the README.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

HEADLINE_BEGIN = "<!-- headline-figures:begin -->"
HEADLINE_END = "<!-- headline-figures:end -->"

_FIGURE_KEYS = {"name": str, "label": str, "unit": str, "headline": bool}
_SAMPLE_KEYS = ("min", "median", "p95", "n", "repeats", "batch", "repeat_medians")


class FiguresUnreadable(Exception):
    """A benchmark's JSON output is missing or not the shape bench/_support.py writes."""


def read_figures(path: Path, benchmark: str) -> list[dict[str, Any]]:
    """The figures a benchmark wrote to `path`, checked for shape."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FiguresUnreadable(f"{benchmark} wrote no figures (no --json-out file)") from None
    except (OSError, ValueError) as exc:
        raise FiguresUnreadable(f"{benchmark} wrote unreadable figures: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("figures"), list):
        raise FiguresUnreadable(f"{benchmark} wrote figures without a 'figures' list")
    for figure in document["figures"]:
        _check_figure(figure, benchmark)
    return document["figures"]


def _check_figure(figure: Any, benchmark: str) -> None:
    if not isinstance(figure, dict):
        raise FiguresUnreadable(f"{benchmark}: a figure is not an object")
    for key, kind in _FIGURE_KEYS.items():
        if not isinstance(figure.get(key), kind):
            raise FiguresUnreadable(f"{benchmark}: figure {figure.get('name')!r} lacks {key!r}")
    if not _is_number(figure.get("value")):
        raise FiguresUnreadable(f"{benchmark}: figure {figure['name']!r} has no numeric value")
    samples = figure.get("samples")
    if samples is not None and (not isinstance(samples, dict) or any(k not in samples for k in _SAMPLE_KEYS)):
        raise FiguresUnreadable(f"{benchmark}: figure {figure['name']!r} has an incomplete samples summary")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_UNIT_SHOWN = {"us": "µs"}


def format_value(value: float, unit: str) -> str:
    """A figure for people: three significant digits or so, thousands separated, unit shown."""
    if unit == "count":
        return f"{value:.0f}"
    if unit == "x":
        return f"{value:.2f}x"
    shown = _UNIT_SHOWN.get(unit, unit)
    if abs(value) >= 1000:
        return f"{value:,.0f} {shown}"
    if abs(value) >= 100:
        return f"{value:.0f} {shown}"
    if abs(value) >= 10:
        return f"{value:.1f} {shown}"
    return f"{value:.2f} {shown}"


def spread(figure: dict[str, Any]) -> str:
    """How a sampled figure was taken: best repeat median, p95, repeats x samples (of a batch)."""
    samples = figure["samples"]
    if samples is None:
        return ""
    best = format_value(min(samples["repeat_medians"]), figure["unit"])
    p95 = format_value(samples["p95"], figure["unit"])
    shape = f"{samples['repeats']} x {samples['n'] // max(samples['repeats'], 1)} samples"
    if samples["batch"] > 1:
        shape += f" of {samples['batch']} ops"
    return f"best repeat {best}, p95 {p95}; {shape}"


def headline_table(benchmarks: list[dict[str, Any]]) -> str:
    """The headline figures of every benchmark as a markdown table, between the markers."""
    lines = [
        HEADLINE_BEGIN,
        "| benchmark | figure | value | how measured |",
        "|---|---|---:|---|",
    ]
    for benchmark in benchmarks:
        for figure in benchmark["figures"]:
            if figure["headline"]:
                value = format_value(figure["value"], figure["unit"])
                lines.append(f"| {benchmark['name']} | {figure['label']} | {value} | {spread(figure)} |")
    lines.append(HEADLINE_END)
    return "\n".join(lines)
