"""What `call` and `tools` share: the flags that say who the user is and where the server is, the
runtime that forwards the user's identity, and one line for each way that can fail."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IdentityMode,
    MCPIdentityForwardingError,
    MCPProvider,
    MCPProviderConfigError,
    MCPTokenError,
    MCPToolInvocationError,
    MCPToolRuntime,
    TokenBroker,
)

__all__ = [
    "SECRET_ENV",
    "add_forwarding_arguments",
    "configure",
    "open_runtime",
    "report_failure",
    "report_invalid_configuration",
]

SECRET_ENV = "MCP_IDFWD_ISSUER_SECRET"


def add_forwarding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--issuer", required=True, help="issuer base URL")
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        required=SECRET_ENV not in os.environ,
        help=f"the issuer's inner API secret (default: ${SECRET_ENV})",
    )
    parser.add_argument("--tenant", required=True, help="tenant id")
    parser.add_argument("--server", required=True, help="MCP endpoint URL (also the token's audience)")
    parser.add_argument("--user", required=True, help="the end user the request is made for")
    parser.add_argument("--user-type", choices=("account", "end_user"), default="account")
    parser.add_argument("--app-id", default="", help="app id sent to the issuer (default: empty)")
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain http:// to --issuer and --server off loopback (secrets travel in clear text)",
    )


def configure(args: argparse.Namespace) -> tuple[MCPProvider, EnterpriseTokenSettings]:
    """The provider and issuer settings the flags describe; raises the runtime's config errors."""
    provider = MCPProvider(
        provider_id="cli",
        tenant_id=args.tenant,
        server_url=args.server,
        identity_mode=IdentityMode.IDP_TOKEN,
        allow_insecure_http=args.allow_insecure_http,
    )
    settings = EnterpriseTokenSettings(
        issuer_url=args.issuer,
        inner_api_secret=args.secret,
        app_id=args.app_id,
        allow_insecure_http=args.allow_insecure_http,
    )
    return provider, settings


@asynccontextmanager
async def open_runtime(settings: EnterpriseTokenSettings) -> AsyncIterator[MCPToolRuntime]:
    async with (
        EnterpriseTokenClient(settings) as token_client,
        MCPToolRuntime(broker=TokenBroker(token_client)) as runtime,
    ):
        yield runtime


def _server_failure(server: str, exc: MCPToolInvocationError) -> str:
    """One line that tells an unreachable server from one that answered with an error."""
    if exc.status_code is None:
        return f"{server} could not be reached or did not speak MCP: {exc}"
    if exc.status_code == 503:
        # Our server answers 503 while it holds no signing keys from its issuer: it is up, and
        # will verify tokens once it can fetch them.
        return (
            f"{server} is up but cannot verify tokens right now (HTTP 503: it has no signing keys from"
            " its issuer; check that the issuer runs and that the server's --issuer names it)"
        )
    return f"{server} answered HTTP {exc.status_code}: {exc}"


def _audience_hint(server: str, exc: MCPIdentityForwardingError) -> str:
    # The token's audience is --server as given, and a server compares its resource URL exactly
    # (RFC 8707, RFC 9728 §3.3): unlike an issuer's root slash, `/mcp/` is not `/mcp`.
    if exc.error_description != "wrong audience" or not server.endswith("/"):
        return ""
    return (
        "; --server is the token's audience and must be the server's URL exactly:"
        " try it without the trailing slash"
    )


def report_invalid_configuration(command: str, exc: Exception) -> int:
    hint = " (--allow-insecure-http)" if "allow_insecure_http" in str(exc) else ""
    print(f"{command}: invalid configuration: {exc}{hint}", file=sys.stderr)
    return 2


def report_failure(command: str, args: argparse.Namespace, exc: Exception) -> int:
    """Print what went wrong at run time (and what a host would tell its user); the exit status."""
    if isinstance(exc, MCPProviderConfigError):
        return report_invalid_configuration(command, exc)
    if isinstance(exc, MCPIdentityForwardingError):
        reason = exc.reason or "no reason given"
        refused = f"refused the token (HTTP {exc.status_code})"
        print(
            f"{command}: {args.server} {refused}: {reason}{_audience_hint(args.server, exc)}", file=sys.stderr
        )
    elif isinstance(exc, MCPToolInvocationError):
        print(f"{command}: {_server_failure(args.server, exc)}", file=sys.stderr)
    elif isinstance(exc, MCPTokenError):
        print(f"{command}: {type(exc).__name__}: {exc}", file=sys.stderr)
    else:
        raise exc
    print(f"  a host would tell its user: {exc.user_message}", file=sys.stderr)
    return 1
