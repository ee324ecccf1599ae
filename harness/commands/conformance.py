"""`mcp-idfwd conformance`: throw the token-defect battery at an MCP server that trusts an issuer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.conformance import CASES, Case, ConformanceSetupError, Expect, Target, run_battery
from harness.conformance.report import FORMATS, render


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "conformance",
        help="check that an MCP server refuses every defective token and accepts a valid one",
        description=(
            "Mint defective tokens through the issuer's admin API (alg none, RS/HS confusion, embedded "
            "keys, wrong aud/iss, expired, ...) and send each in an MCP initialize request. Exit 0 when "
            "every defect is refused and the valid token accepted, 1 when the server accepted a defect, "
            "refused the valid token or crashed, 2 when the battery could not run."
        ),
    )
    parser.add_argument("--server", required=True, help="the MCP endpoint, e.g. http://127.0.0.1:9100/mcp")
    parser.add_argument(
        "--issuer-admin", required=True, help="base URL of the issuer the server trusts (admin API)"
    )
    parser.add_argument("--secret", required=True, help="the issuer's admin/inner API secret")
    parser.add_argument("--audience", help="the aud the server expects (default: --server)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="table", help="report format")
    parser.add_argument("--output", type=Path, help="write the report to this file instead of stdout")
    parser.add_argument(
        "--no-rotate",
        action="store_true",
        help="never rotate the issuer's keys (the no-kid case is skipped when the JWKS has one key)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request")
    parser.add_argument(
        "--case",
        action="append",
        choices=[case.name for case in CASES],
        metavar="NAME",
        help="run only this case (repeatable; the positive control always runs). Cases: "
        + ", ".join(case.name for case in CASES),
    )
    parser.set_defaults(run=run)


def _selected(names: list[str] | None) -> tuple[Case, ...]:
    if not names:
        return CASES
    return tuple(case for case in CASES if case.expect is Expect.ACCEPT or case.name in names)


def run(args: argparse.Namespace) -> int:
    target = Target(
        server_url=args.server,
        issuer_url=args.issuer_admin,
        secret=args.secret,
        audience=args.audience,
        rotate_keys=not args.no_rotate,
        timeout=args.timeout,
    )
    try:
        report = run_battery(target, _selected(args.case))
    except ConformanceSetupError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    text = render(report, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"conformance: report written to {args.output} (exit {report.exit_code})", file=sys.stderr)
    return report.exit_code
