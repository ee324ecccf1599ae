"""`mcp-idfwd conformance`: throw the token-defect battery at an MCP server that trusts an issuer."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from harness.conformance import (
    CASES,
    Case,
    ConformanceSetupError,
    Expect,
    ServerUnreachable,
    Target,
    run_battery,
)
from harness.conformance.report import FORMATS, render

ADMIN_SECRET_ENV = "MCP_IDFWD_ADMIN_SECRET"
EXIT_SETUP_FAILED = 2
EXIT_SERVER_UNREACHABLE = 3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "conformance",
        help="check that an MCP server refuses every defective token and accepts a valid one",
        description=(
            "Mint defective tokens through the issuer's admin API (alg none, RS/HS confusion, embedded "
            "keys, wrong aud/iss, expired, huge time values, duplicate members, another tenant's user on "
            "a session, ...) and send each to the server over MCP. Exit 0 when every defect is refused "
            "and the valid token accepted, 1 when the server accepted a defect, refused the valid token "
            "or crashed, 2 when the battery could not run, 3 when the server could not be reached."
        ),
    )
    parser.add_argument("--server", required=True, help="the MCP endpoint, e.g. http://127.0.0.1:9100/mcp")
    parser.add_argument(
        "--issuer-admin", required=True, help="base URL of the issuer the server trusts (admin API)"
    )
    parser.add_argument(
        "--admin-secret",
        default=os.environ.get(ADMIN_SECRET_ENV),
        required=ADMIN_SECRET_ENV not in os.environ,
        help=f"the issuer's admin API secret (default: ${ADMIN_SECRET_ENV})",
    )
    parser.add_argument("--audience", help="the aud the server expects (default: --server)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="judge by the strict profile: accepting what no RFC forbids but the profile refuses "
        "(iat in the future, an oversized token, duplicate members, over-long lifetimes, ...) fails",
    )
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
        admin_secret=args.admin_secret,
        audience=args.audience,
        rotate_keys=not args.no_rotate,
        timeout=args.timeout,
        strict=args.strict,
    )
    try:
        report = run_battery(target, _selected(args.case))
    except ServerUnreachable as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return EXIT_SERVER_UNREACHABLE
    except ConformanceSetupError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    text = render(report, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return report.exit_code
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"conformance: cannot write the report to {args.output}: {exc.strerror}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    print(f"conformance: report written to {args.output} (exit {report.exit_code})", file=sys.stderr)
    return report.exit_code
