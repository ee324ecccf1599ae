"""`mcp-idfwd conformance`: throw the token-defect battery at an MCP server that trusts an issuer,
or, with `--idjag`, the ID-JAG checks at the token endpoint of an authorization server that accepts
our issuer's ID-JAGs (enterprise-managed authorization)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fake_enterprise import AdminClient, AdminClientError
from fake_mcp_server.authorization.settings import ClientCredentials
from harness.conformance import (
    CASES,
    Case,
    ConformanceSetupError,
    Expect,
    ServerUnreachable,
    Target,
    run_battery,
)
from harness.conformance.model import BatteryReport
from harness.conformance.report import FORMATS, render
from harness.idjag_conformance import IdJagTarget, admin_minter, battery_report, run_idjag_checks

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
            "or crashed, 2 when the battery could not run, 3 when the server could not be reached. "
            "With --idjag: mint defective ID-JAGs (wrong typ, aud, client, resource, iss, kid, alg none, "
            "expired, replayed, scope escalation, ...) and present each to the authorization server's "
            "token endpoint with the jwt-bearer grant as --client; same report formats and exit codes."
        ),
    )
    parser.add_argument(
        "--server",
        required=True,
        help="the MCP endpoint, e.g. http://127.0.0.1:9100/mcp (with --idjag: the resource the ID-JAGs name)",
    )
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
    idjag = parser.add_argument_group("ID-JAG checks (enterprise-managed authorization)")
    idjag.add_argument(
        "--idjag",
        action="store_true",
        help="check an authorization server that accepts ID-JAGs instead of the MCP server's token checks",
    )
    idjag.add_argument("--as-token-endpoint", metavar="URL", help="with --idjag: the AS token endpoint")
    idjag.add_argument(
        "--as-issuer",
        metavar="URL",
        help="with --idjag: the AS issuer, the aud of its ID-JAGs (default: the token endpoint's origin)",
    )
    idjag.add_argument(
        "--client",
        type=_client,
        metavar="ID:SECRET",
        help="with --idjag: a confidential client the AS knows (sent client_secret_post)",
    )
    parser.set_defaults(run=run)


def _client(text: str) -> ClientCredentials:
    try:
        return ClientCredentials.parse(text)
    except ValueError as exc:
        # The message names the client id at most, never the secret.
        raise argparse.ArgumentTypeError(str(exc)) from None


def _selected(names: list[str] | None) -> tuple[Case, ...]:
    if not names:
        return CASES
    return tuple(case for case in CASES if case.expect is Expect.ACCEPT or case.name in names)


def _idjag_usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the mix of --idjag options, if anything (one line for the user)."""
    if not args.idjag:
        idjag_only = {"--as-token-endpoint": args.as_token_endpoint, "--as-issuer": args.as_issuer}
        given = [flag for flag, value in {**idjag_only, "--client": args.client}.items() if value]
        return f"{', '.join(given)} need --idjag" if given else None
    if not args.as_token_endpoint or args.client is None:
        return "--idjag needs --as-token-endpoint and --client"
    battery_only = {"--audience": args.audience, "--strict": args.strict, "--no-rotate": args.no_rotate}
    unused = [flag for flag, value in {**battery_only, "--case": args.case}.items() if value]
    return f"{', '.join(unused)} do not apply to --idjag" if unused else None


def _default_as_issuer(token_endpoint: str) -> str:
    parts = urlsplit(token_endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def _run_idjag(args: argparse.Namespace) -> BatteryReport:
    client: ClientCredentials = args.client
    issuer = args.as_issuer or _default_as_issuer(args.as_token_endpoint)
    target = IdJagTarget(args.as_token_endpoint, client.client_id, client.client_secret, timeout=args.timeout)
    with AdminClient(args.issuer_admin, args.admin_secret, timeout=args.timeout) as admin:
        mint = admin_minter(admin, audience=issuer, resource=args.server, client_id=client.client_id)
        try:
            mint({}, {})
            results = run_idjag_checks(target, mint)
        except AdminClientError as exc:
            raise ConformanceSetupError(
                f"cannot mint ID-JAGs through the issuer's admin API: {exc}"
            ) from None
    # The positive control comes first: no answer to it means no AS to judge (one that dies later fails).
    if results and results[0].observed.startswith("0 "):
        raise ServerUnreachable(
            f"the authorization server's token endpoint {args.as_token_endpoint} did not answer"
        )
    return battery_report(
        results, token_endpoint=args.as_token_endpoint, issuer_url=args.issuer_admin, audience=issuer
    )


def _run_battery(args: argparse.Namespace) -> BatteryReport:
    target = Target(
        server_url=args.server,
        issuer_url=args.issuer_admin,
        admin_secret=args.admin_secret,
        audience=args.audience,
        rotate_keys=not args.no_rotate,
        timeout=args.timeout,
        strict=args.strict,
    )
    return run_battery(target, _selected(args.case))


def run(args: argparse.Namespace) -> int:
    problem = _idjag_usage_error(args)
    if problem is not None:
        print(f"conformance: {problem}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    try:
        report = _run_idjag(args) if args.idjag else _run_battery(args)
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
