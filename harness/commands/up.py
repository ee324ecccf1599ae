"""`mcp-idfwd up`: run the issuer and the MCP server together until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sqlite3
import sys
import threading
from typing import Any

from fake_enterprise import (
    SIGNING_ALGORITHMS,
    AdminAPIError,
    DatabasePathError,
    DataKeyError,
    StorageTamperedError,
)
from harness.access_log import LOG_LEVELS, configure_logging
from harness.commands._arguments import loopback_host, port, positive_int
from harness.generated_secrets import new_secret
from harness.servers import PortUnavailableError
from harness.stack import LocalStack, StackSettings

SECRET_ENV = "MCP_IDFWD_ISSUER_SECRET"
ADMIN_SECRET_ENV = "MCP_IDFWD_ADMIN_SECRET"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run the issuer and the MCP server on loopback until stopped, with users ready to call",
        description=(
            "Start the issuer and the reference MCP server (trusting it), create users with SSO grants, "
            "print the URLs, the secrets and commands to try, and keep running until Ctrl-C or SIGTERM."
        ),
    )
    parser.add_argument("--host", type=loopback_host, default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--issuer-port", type=port, default=9000, help="issuer port, 0 for a free one")
    parser.add_argument("--server-port", type=port, default=9100, help="MCP server port, 0 for a free one")
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        help=f"the issuer's inner secret, for issue-token only (default: ${SECRET_ENV}, else generated)",
    )
    parser.add_argument(
        "--admin-secret",
        default=os.environ.get(ADMIN_SECRET_ENV),
        help=f"the issuer's admin API secret (default: ${ADMIN_SECRET_ENV}, else a generated one)",
    )
    parser.add_argument("--db", default=":memory:", help="issuer SQLite database (default: in memory)")
    parser.add_argument("--alg", choices=SIGNING_ALGORITHMS, default="RS256", help="signing algorithm")
    parser.add_argument("--token-ttl", type=positive_int, default=300, help="token lifetime in seconds")
    parser.add_argument("--tenant", default="acme", help="tenant of the users created (default: acme)")
    parser.add_argument(
        "--users", default="alice,bob", help="comma-separated users to create with SSO grants ('' for none)"
    )
    parser.add_argument(
        "--auto-login",
        action="store_true",
        help="the issuer signs in the user named by login_hint=<tenant>/<user> without its page",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="warning",
        help="log level on stderr; at info, one access-log line per request, tokens shown only as their"
        " kid, sub and jti (default: warning; info shows the access logs of both servers)",
    )
    parser.set_defaults(run=run)


def _ensure_user(stack: LocalStack, tenant: str, user: str) -> None:
    try:
        stack.admin.create_user(tenant, user, email=f"{user}@example.com", name=user.title())
    except AdminAPIError as exc:
        if exc.status != 409:  # already there, from an earlier run on the same --db
            raise
    stack.admin.grant(tenant, user)


def _banner(stack: LocalStack, tenant: str, users: list[str]) -> str:
    q = shlex.quote
    example_user = users[0] if users else "alice"
    body = json.dumps(
        {"tenant_id": tenant, "user_id": example_user, "app_id": "", "audience": stack.server_url},
        separators=(",", ":"),
    )
    curl = (
        f"curl -s -X POST {stack.issuer_url}/inner/api/mcp/issue-token "
        f"-H {q('Enterprise-Api-Secret-Key: ' + stack.secret)} "
        f"-H 'Content-Type: application/json' -d {q(body)}"
    )
    # `--flag=VALUE`, quoted: a value that starts with `-` must not read as an option.
    call = (
        f"mcp-idfwd call --issuer={q(stack.issuer_url)} --secret={q(stack.secret)} --tenant={q(tenant)} "
        f"--server={q(stack.server_url)} --user={q(example_user)} --tool=whoami"
    )
    conformance = (
        f"mcp-idfwd conformance --server={q(stack.server_url)} --issuer-admin={q(stack.issuer_url)} "
        f"--admin-secret={q(stack.admin_secret)}"
    )
    who = ", ".join(f"{tenant}/{user}" for user in users) or "(none; create them with the admin API)"
    return "\n".join(
        [
            "mcp-idfwd up: the issuer and the MCP server are running (Ctrl-C to stop)",
            f"  issuer      {stack.issuer_url}",
            f"  MCP server  {stack.server_url}",
            f"  secret      {stack.secret}  (inner: hosts send it to issue-token)",
            f"  admin       {stack.admin_secret}  (admin API: Authorization: Bearer ...)",
            f"  users       {who} (SSO grants stored)",
            "",
            f"Issue a token for {example_user}:",
            f"  {curl}",
            f"Call a tool as {example_user}:",
            f"  {call}",
            "Run the conformance battery against the server:",
            f"  {conformance}",
            "Sign in with an OAuth client (the MCP Inspector) and call a tool as the user you pick:",
            f"  npx @modelcontextprotocol/inspector@2.12.0 --cli {stack.server_url}"
            " --method tools/call --tool-name whoami",
            "",
        ]
    )


def run(args: argparse.Namespace) -> int:
    # Made here, not by the stack, so the log filter knows them before anything is logged.
    secret = args.secret or new_secret()
    admin_secret = args.admin_secret or new_secret()
    with configure_logging(args.log_level, secrets=(secret, admin_secret)):
        return _run(args, secret, admin_secret)


def _run(args: argparse.Namespace, secret: str, admin_secret: str) -> int:
    settings = StackSettings(
        host=args.host,
        issuer_port=args.issuer_port,
        server_port=args.server_port,
        secret=secret,
        admin_secret=admin_secret,
        db_path=args.db,
        alg=args.alg,
        token_ttl=args.token_ttl,
        auto_login=args.auto_login,
        exclusive_db=True,
        log_level=args.log_level,
        access_log=True,
    )
    users = [user.strip() for user in args.users.split(",") if user.strip()]
    # SIGTERM stops us the way Ctrl-C does: as KeyboardInterrupt, unwinding through `with`.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with LocalStack(settings) as stack:
            # The stack's own admin calls are not worth a log line each.
            logging.getLogger("httpx").setLevel(logging.WARNING)
            for user in users:
                _ensure_user(stack, args.tenant, user)
            print(_banner(stack, args.tenant, users), flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                print("mcp-idfwd up: stopping", file=sys.stderr, flush=True)
    except PortUnavailableError as exc:
        flag = "--issuer-port" if exc.port == args.issuer_port else "--server-port"
        print(
            f"mcp-idfwd up: cannot start: {exc} (choose another with {flag}, or 0 for a free one)",
            file=sys.stderr,
        )
        return 1
    except (OSError, ValueError, DatabasePathError, DataKeyError, StorageTamperedError, sqlite3.Error) as exc:
        print(f"mcp-idfwd up: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
