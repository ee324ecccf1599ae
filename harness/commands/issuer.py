"""`mcp-idfwd issuer`: run the identity issuer (fake_enterprise) on loopback."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from contextlib import nullcontext
from typing import Any

from fake_enterprise import (
    SIGNING_ALGORITHMS,
    SIGNING_MODES,
    TOKEN_PROFILES,
    DatabaseLock,
    DatabasePathError,
    DataKeyError,
    IssuerSettings,
    StorageTamperedError,
    create_app,
)
from fake_enterprise.service import IssuerService
from harness.access_log import LOG_LEVELS, AccessLogMiddleware, access_logger, configure_logging
from harness.commands._arguments import loopback_host, port, positive_int
from harness.generated_secrets import new_secret
from harness.issuer_workers import (
    SOCKET_SHARING,
    IssuerWorkers,
    WorkerFailedError,
    serve_with_workers,
)
from harness.servers import bind_loopback, serve_forever, socket_url

SECRET_ENV = "MCP_IDFWD_ISSUER_SECRET"
ADMIN_SECRET_ENV = "MCP_IDFWD_ADMIN_SECRET"


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
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="worker processes serving the port, all on one database and key ring (needs --db FILE;"
        " default: 1, no extra process)",
    )
    parser.add_argument(
        "--socket-sharing",
        choices=SOCKET_SHARING,
        default="reuseport",
        help="with --workers: each worker listens on its own SO_REUSEPORT socket (default), or all"
        " accept on one shared socket",
    )
    parser.add_argument(
        "--signing-mode",
        choices=SIGNING_MODES,
        default="auto",
        help="where issue-token signs: inline on the event loop, in a thread pool, or auto (per alg;"
        " see docs/issuer-performance.md)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.workers > 1 and args.db in (":memory:", ""):
        print("mcp-idfwd issuer: --workers needs --db FILE (the workers share one database)", file=sys.stderr)
        return 1
    secret = args.secret or new_secret()
    admin_secret = args.admin_secret or new_secret()
    with configure_logging(args.log_level, secrets=(secret, admin_secret)):
        return _run(args, secret, admin_secret)


def _run(args: argparse.Namespace, secret: str, admin_secret: str) -> int:
    # With SO_REUSEPORT workers, this socket only holds the port: the workers listen on their own.
    reuse_port = args.workers > 1 and args.socket_sharing == "reuseport"
    try:
        sock = bind_loopback(args.host, args.port, reuse_port=reuse_port, listen=not reuse_port)
    except OSError as exc:
        print(
            f"mcp-idfwd issuer: {exc} (choose another with --port, or --port=0 for a free one)",
            file=sys.stderr,
        )
        return 1
    with sock:
        url = socket_url(sock)
        try:
            # The lock belongs to this process, also when it supervises workers (which never take it).
            with DatabaseLock.acquire(args.db) or nullcontext():
                settings = IssuerSettings(
                    issuer_url=url,
                    secret=secret,
                    admin_secret=admin_secret,
                    db_path=args.db,
                    alg=args.alg,
                    token_ttl=args.token_ttl,
                    token_profile=args.token_profile,
                    auto_login=args.auto_login,
                    signing_mode=args.signing_mode,
                )
                if args.workers == 1:
                    app = create_app(settings)
                    _announce(args, url, settings, secret, admin_secret)
                    logged = AccessLogMiddleware(app, access_logger("issuer"))
                    serve_forever(logged, sock, log_level=args.log_level)
                    return 0
                # Checked (data key, stored keys, schema) and prepared once, here, so that a bad
                # database is one line from the supervisor, not N tracebacks from workers.
                IssuerService(settings).close()

                def announce(workers: IssuerWorkers) -> None:
                    _announce(args, url, settings, secret, admin_secret)
                    pids = " ".join(map(str, workers.pids))
                    print(f"workers: {args.workers} ({args.socket_sharing}), pids {pids}", flush=True)

                return serve_with_workers(
                    settings,
                    sock,
                    args.workers,
                    socket_sharing=args.socket_sharing,
                    log_level=args.log_level,
                    announce=announce,
                    on_exit=lambda why: print(f"mcp-idfwd issuer: {why}", file=sys.stderr),
                )
        except (
            ValueError,
            DatabasePathError,
            DataKeyError,
            StorageTamperedError,
            WorkerFailedError,
            OSError,
            sqlite3.Error,
        ) as exc:
            print(f"mcp-idfwd issuer: {exc}", file=sys.stderr)
            return 1


def _announce(
    args: argparse.Namespace, url: str, settings: IssuerSettings, secret: str, admin_secret: str
) -> None:
    print(f"issuer: {url}")
    print(f"jwks:   {settings.jwks_uri}")
    print(
        f"oauth:  {url}/.well-known/oauth-authorization-server" + (" (auto-login)" if args.auto_login else "")
    )
    # A generated secret is printed once, here; a given one is never echoed.
    print(f"secret: {secret}" if not args.secret else "secret: (as given)")
    print(f"admin secret: {admin_secret}" if not args.admin_secret else "admin secret: (as given)")
    print(f"db:     {args.db}", flush=True)
