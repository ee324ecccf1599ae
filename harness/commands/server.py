"""`mcp-idfwd server`: run the reference MCP server, every request checked against the issuer's JWKS."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import anyio

from fake_mcp_server import IssuerCheckFailed, JWKSTokenVerifier, ServerSettings, VerifierSettings, create_app
from fake_mcp_server.authorization import AuthorizationServerSettings, ClientCredentials
from harness.access_log import LOG_LEVELS, AccessLogMiddleware, access_logger, configure_logging
from harness.commands._arguments import loopback_host, non_negative_seconds, port
from harness.servers import bind_loopback, serve_forever, socket_url


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "server",
        help="run the reference MCP server that verifies forwarded identities",
        description="Run the reference MCP server (streamable HTTP at /mcp, tools whoami, add_note,"
        " list_notes, echo). Every request must carry a Bearer JWT from the issuer, addressed to the"
        " resource URL.",
    )
    parser.add_argument(
        "--issuer", required=True, help="issuer URL (its JWKS is found through OIDC discovery)"
    )
    parser.add_argument("--jwks-url", help="JWKS URL, instead of the one discovery names")
    parser.add_argument(
        "--wait-for-issuer",
        type=non_negative_seconds,
        default=0.0,
        metavar="SECONDS",
        help="at start the server fetches the issuer's keys and refuses to start if it cannot; wait up"
        " to SECONDS for an issuer that is not up yet (default: 0, do not wait)",
    )
    parser.add_argument(
        "--skip-issuer-check",
        action="store_true",
        help="start without fetching the issuer's keys first (requests get 503 until they can be fetched)",
    )
    parser.add_argument(
        "--resource-url",
        help="the URL clients reach this server at, which tokens must name as their audience"
        " (default: http://HOST:PORT/mcp)",
    )
    parser.add_argument(
        "--host", type=loopback_host, default="127.0.0.1", help="loopback address (default: 127.0.0.1)"
    )
    parser.add_argument("--port", type=port, default=9100, help="port, 0 for a free one (default: 9100)")
    parser.add_argument(
        "--auth",
        choices=("issuer", "id-jag"),
        default="issuer",
        help="issuer: accept the issuer's tokens (default); id-jag: run this server's own authorization"
        " server, which exchanges ID-JAGs from trusted IdPs (SEP-990) for its access tokens",
    )
    parser.add_argument(
        "--trust-idp",
        action="append",
        metavar="URL",
        help="with --auth id-jag: an IdP whose ID-JAGs to accept (repeatable; default: --issuer)",
    )
    parser.add_argument(
        "--client",
        action="append",
        type=_client,
        metavar="ID:SECRET",
        help="with --auth id-jag: a confidential client (client_secret_post) that may present ID-JAGs"
        " (repeatable)",
    )
    parser.add_argument(
        "--allow-registration",
        action="store_true",
        help="with --auth id-jag: let confidential clients register themselves (RFC 7591)",
    )
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="accept plain http issuer, JWKS and resource URLs off loopback (tokens travel in clear text)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="log level on stderr; at info, one access-log line per request, tokens shown only as their"
        " kid, sub and jti (default: info)",
    )
    parser.set_defaults(run=run)


def _client(text: str) -> ClientCredentials:
    try:
        return ClientCredentials.parse(text)
    except ValueError as exc:
        # The message names the client id at most, never the secret.
        raise argparse.ArgumentTypeError(str(exc)) from None


def _authorization(args: argparse.Namespace) -> AuthorizationServerSettings | None:
    if args.auth != "id-jag":
        if args.trust_idp or args.client or args.allow_registration:
            raise ValueError("--trust-idp, --client and --allow-registration need --auth id-jag")
        return None
    if args.jwks_url:
        raise ValueError("--jwks-url applies to --auth issuer only")
    return AuthorizationServerSettings(
        trusted_idps=tuple(args.trust_idp or [args.issuer]),
        clients=tuple(args.client or ()),
        allow_registration=args.allow_registration,
    )


async def _fetch_keys(settings: VerifierSettings) -> int:
    async with JWKSTokenVerifier(settings) as verifier:
        return await verifier.check_issuer()


def check_issuer(settings: VerifierSettings, wait: float) -> str | None:
    """Fetch the issuer's keys as the server will; None if that works, else one line saying why not.

    A failure that waiting can cure (unreachable, 5xx) is retried until `wait` seconds have passed.
    """
    deadline = time.monotonic() + wait
    announced = False
    while True:
        try:
            anyio.run(_fetch_keys, settings)
        except IssuerCheckFailed as exc:
            remaining = deadline - time.monotonic()
            if not exc.transient:
                return f"the issuer check failed: {exc}"
            if remaining <= 0:
                waited = (
                    f" after waiting {wait:g}s"
                    if wait
                    else "; start it first, or pass --wait-for-issuer SECONDS"
                )
                return f"the issuer is not available: {exc}{waited}"
            if not announced:
                print(
                    f"mcp-idfwd server: waiting up to {wait:g}s for the issuer ({exc})",
                    file=sys.stderr,
                    flush=True,
                )
                announced = True
            # The issuer is starting (or restarting): ask again shortly.
            time.sleep(min(0.2, remaining))
        else:
            return None


def run(args: argparse.Namespace) -> int:
    secrets = [client.client_secret for client in args.client or ()]
    with configure_logging(args.log_level, secrets=secrets):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        sock = bind_loopback(args.host, args.port)
    except OSError as exc:
        print(
            f"mcp-idfwd server: {exc} (choose another with --port, or --port=0 for a free one)",
            file=sys.stderr,
        )
        return 1
    with sock:
        resource_url = args.resource_url or socket_url(sock) + "/mcp"
        try:
            settings = ServerSettings(
                issuer_url=args.issuer,
                resource_url=resource_url,
                jwks_url=args.jwks_url,
                authorization=_authorization(args),
                allow_insecure_http=args.allow_insecure_http,
            )
        except ValueError as exc:
            print(f"mcp-idfwd server: {exc}", file=sys.stderr)
            return 2
        try:
            app = create_app(settings)
        except ValueError as exc:
            print(f"mcp-idfwd server: {exc}", file=sys.stderr)
            return 2
        authorization_server = app.state.authorization_server
        if authorization_server is None and not args.skip_issuer_check:
            problem = check_issuer(settings.verifier_settings(), args.wait_for_issuer)
            if problem is not None:
                print(f"mcp-idfwd server: {problem}", file=sys.stderr)
                return 1
        print(f"mcp server: {resource_url}")
        if authorization_server is None:
            print(f"issuer:     {settings.issuer_url}")
            print(f"jwks:       {settings.jwks_url or '(from discovery)'}", flush=True)
        else:
            authorization = authorization_server.settings
            print(f"authorization server: {authorization_server.issuer} (ID-JAG, jwt-bearer grant)")
            print(f"trusted idps:         {', '.join(authorization.trusted_idps)}")
            clients = ", ".join(client.client_id for client in authorization.clients) or "(none)"
            registration = " + self-registered" if authorization.allow_registration else ""
            print(f"clients:              {clients}{registration}", flush=True)
        serve_forever(AccessLogMiddleware(app, access_logger("server")), sock, log_level=args.log_level)
    return 0
