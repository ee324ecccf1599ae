"""Render a conformance `BatteryReport` as a text table, JSON, or JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict

from harness.conformance.model import BatteryReport, CaseResult, Verdict

__all__ = ["FORMATS", "render", "render_json", "render_junit", "render_table"]

_JUNIT_CLASSNAME = "mcp_idfwd.conformance"


def _summary(report: BatteryReport) -> str:
    counts = ", ".join(f"{report.count(v)} {v.value}" for v in Verdict if report.count(v))
    outcome = {0: "CONFORMANT", 1: "NOT CONFORMANT", 2: "INCOMPLETE"}[report.exit_code]
    return f"{outcome}: {len(report.results)} cases ({counts})"


def _profile(report: BatteryReport) -> str:
    return "strict" if report.strict else "standard (--strict for the strict profile)"


def _observed(result: CaseResult) -> str:
    if result.observed_status is None:
        return "-"
    return f"{result.observed_status} {result.observed_challenge or ''}".rstrip()


def _expected(result: CaseResult) -> str:
    challenge = result.expected_challenge
    return result.expected_status if challenge == "-" else f"{result.expected_status} {challenge}"


def render_table(report: BatteryReport) -> str:
    """A fixed-width table, one row per case (expected and observed status and challenge), with
    the reason under every case that did not plainly pass."""
    header = ("case", "expected", "observed", "verdict")
    rows = [
        (result.name, _expected(result), _observed(result), result.verdict.value.upper())
        for result in report.results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    lines = [
        f"server:   {report.server_url}",
        f"audience: {report.audience}",
        f"issuer:   {report.issuer_url}",
        f"profile:  {_profile(report)}",
        *(f"note:     {note}" for note in report.notes),
        "",
        line(header),
        line(tuple("-" * width for width in widths)),
    ]
    for result, row in zip(report.results, rows, strict=True):
        lines.append(line(row))
        if result.verdict is not Verdict.PASS:
            lines.append(f"    {result.title}: {result.detail}")
    lines += ["", _summary(report)]
    return "\n".join(lines) + "\n"


def render_json(report: BatteryReport) -> str:
    document = asdict(report)
    document["results"] = [
        {
            **asdict(result),
            "requirement": result.requirement.value,
            "verdict": result.verdict.value,
            "seconds": round(result.seconds, 4),
        }
        for result in report.results
    ]
    document["summary"] = {verdict.value: report.count(verdict) for verdict in Verdict}
    document["exit_code"] = report.exit_code
    return json.dumps(document, indent=2) + "\n"


def render_junit(report: BatteryReport) -> str:
    """JUnit XML: one `<testcase>` per case, failures and errors as the schema's elements."""
    suites = ET.Element("testsuites", name="mcp-idfwd conformance")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="mcp-idfwd conformance",
        tests=str(len(report.results)),
        failures=str(report.count(Verdict.FAIL)),
        errors=str(report.count(Verdict.ERROR)),
        skipped=str(report.count(Verdict.SKIP)),
        time=f"{sum(result.seconds for result in report.results):.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("server", report.server_url),
        ("audience", report.audience),
        ("issuer", report.issuer_url),
        ("profile", "strict" if report.strict else "standard"),
        *(("note", note) for note in report.notes),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    for result in report.results:
        case = ET.SubElement(
            suite, "testcase", classname=_JUNIT_CLASSNAME, name=result.name, time=f"{result.seconds:.3f}"
        )
        observed = f"expected {_expected(result)}; observed {_observed(result)}"
        message = f"{result.title}: {result.detail} (source: {result.source})"
        if result.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", message=message, type="conformance").text = observed
        elif result.verdict is Verdict.ERROR:
            ET.SubElement(case, "error", message=message, type="setup").text = observed
        elif result.verdict is Verdict.SKIP:
            ET.SubElement(case, "skipped", message=message)
        else:
            ET.SubElement(case, "system-out").text = f"{result.verdict.value}: {message}\n{observed}"
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


FORMATS: dict[str, Callable[[BatteryReport], str]] = {
    "table": render_table,
    "json": render_json,
    "junit": render_junit,
}


def render(report: BatteryReport, fmt: str) -> str:
    return FORMATS[fmt](report)
