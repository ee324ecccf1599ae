"""`mcp-idfwd issuer`: run the identity issuer (fake_enterprise) on loopback."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from typing import Any

from fake_enterprise import (
    SIGNING_ALGORITHMS,
    TOKEN_PROFILES,
    DatabasePathError,
    DataKeyError,
    IssuerSettings,
    StorageTamperedError,
    create_app,
)
from harness.access_log import LOG_LEVELS, AccessLogMiddleware, configure_logging
from harness.commands._arguments import loopback_host, port, positive_int
from harness.generated_secrets import new_secret
from harness.servers import bind_loopback, serve_forever, socket_url

SECRET_ENV = "MCP_IDFWD_ISSUER_SECRET"
ADMIN_SECRET_ENV = "MCP_IDFWD_ADMIN_SECRET"
ACCESS_LOGGER = "mcp_idfwd.access.issuer"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "issuer",
        help="run the identity issuer (OAuth/OIDC server, JWKS, issue-token, admin API)",
        description="Run the identity issuer: OIDC discovery, JWKS, the inner issue-token API and the admin"
        " API. It binds loopback only: it is a test double and its admin API mints anything.",
    )
    parser.add_argument(
        "--host",
        type=loopback_host,
        default="127.0.0.1",
        help="loopback address (default: 127.0.0.1)",
    )
    parser.add_argument("--port", type=port, default=9000, help="port, 0 for a free one (default: 9000)")
    parser.add_argument(
        "--db",
        default=":memory:",
        help="SQLite database file (default: in memory, nothing persists); the data key file "
        "<db>.key is created next to it unless $MCP_IDFWD_DATA_KEY is set",
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        help="inner secret: the Enterprise-Api-Secret-Key hosts send to issue-token, which opens nothing"
        f" else (default: ${SECRET_ENV}, else a generated one, printed on start)",
    )
    parser.add_argument(
        "--admin-secret",
        default=os.environ.get(ADMIN_SECRET_ENV),
        help="admin secret: opens the admin API, sent as 'Authorization: Bearer <admin secret>'"
        f" (default: ${ADMIN_SECRET_ENV}, else a generated one, printed on start)",
    )
    parser.add_argument("--alg", choices=SIGNING_ALGORITHMS, default="RS256", help="signing algorithm")
    parser.add_argument("--token-ttl", type=positive_int, default=300, help="token lifetime in seconds")
    parser.add_argument(
        "--token-profile", choices=TOKEN_PROFILES, default="id_token", help="default token profile"
    )
    parser.add_argument(
        "--auto-login",
        action="store_true",
        help="answer an authorization request whose login_hint=<tenant>/<user> names an existing user"
        " with a code straight away, without the sign-in page (for headless OAuth clients and CI)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="log level on stderr; at info, one access-log line per request, tokens shown only as their"
        " kid, sub and jti (default: info)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    secret = args.secret or new_secret()
    admin_secret = args.admin_secret or new_secret()
    with configure_logging(args.log_level, secrets=(secret, admin_secret)):
        return _run(args, secret, admin_secret)


def _run(args: argparse.Namespace, secret: str, admin_secret: str) -> int:
    try:
        sock = bind_loopback(args.host, args.port)
    except OSError as exc:
        print(
            f"mcp-idfwd issuer: {exc} (choose another with --port, or --port=0 for a free one)",
            file=sys.stderr,
        )
        return 1
    with sock:
        url = socket_url(sock)
        try:
            settings = IssuerSettings(
                issuer_url=url,
                secret=secret,
                admin_secret=admin_secret,
                db_path=args.db,
                alg=args.alg,
                token_ttl=args.token_ttl,
                token_profile=args.token_profile,
                auto_login=args.auto_login,
                exclusive_db=True,
            )
            app = create_app(settings)
        except (
            ValueError,
            DatabasePathError,
            DataKeyError,
            StorageTamperedError,
            OSError,
            sqlite3.Error,
        ) as exc:
            print(f"mcp-idfwd issuer: {exc}", file=sys.stderr)
            return 1
        print(f"issuer: {url}")
        print(f"jwks:   {settings.jwks_uri}")
        print(
            f"oauth:  {url}/.well-known/oauth-authorization-server"
            + (" (auto-login)" if args.auto_login else "")
        )
        # A generated secret is printed once, here; a given one is never echoed.
        print(f"secret: {secret}" if not args.secret else "secret: (as given)")
        print(f"admin secret: {admin_secret}" if not args.admin_secret else "admin secret: (as given)")
        print(f"db:     {args.db}", flush=True)
        serve_forever(
            AccessLogMiddleware(app, logging.getLogger(ACCESS_LOGGER)), sock, log_level=args.log_level
        )
    return 0
