"""What `call` and `tools` share: the flags that say who the user is and where the server is, the
runtime that forwards the user's identity, and one line for each way that can fail.

`--mode` picks how the user's identity is obtained: `idp_token` (the issuer's inner issue-token
API, `--secret`), `token_exchange` (the user's ID token exchanged at the IdP for an access token
to `--server`) or `id_jag` (an ID-JAG from the IdP redeemed at `--server`'s own authorization
server). The last two act as the host's confidential OAuth client at the IdP (`--client-id`,
`--client-secret`) and get the user's ID token by signing them in (the issuer must run with
`--auto-login`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from client_runtime import (
    AuthorizationServerClient,
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IdentityMode,
    IdJagSource,
    IdpClientSettings,
    IdpTokenExchange,
    MCPIdentityForwardingError,
    MCPProvider,
    MCPProviderConfigError,
    MCPTokenError,
    MCPToolInvocationError,
    MCPToolRuntime,
    TokenBroker,
    TokenExchangeSource,
)
from harness.id_tokens import HostClient, SignInIdTokens

__all__ = [
    "AS_CLIENT_ENV",
    "CLIENT_SECRET_ENV",
    "MODES",
    "SECRET_ENV",
    "ForwardingSetup",
    "UsageError",
    "add_forwarding_arguments",
    "configure",
    "open_runtime",
    "report_failure",
    "report_invalid_configuration",
]

SECRET_ENV = "MCP_IDFWD_ISSUER_SECRET"
CLIENT_SECRET_ENV = "MCP_IDFWD_CLIENT_SECRET"
AS_CLIENT_ENV = "MCP_IDFWD_AS_CLIENT"
MODES = (IdentityMode.IDP_TOKEN, IdentityMode.TOKEN_EXCHANGE, IdentityMode.ID_JAG)


class UsageError(Exception):
    """An option the chosen mode needs is missing."""


@dataclass(frozen=True)
class ForwardingSetup:
    """The provider, and the settings of whichever token source the mode uses."""

    provider: MCPProvider
    issuer: EnterpriseTokenSettings | None = None
    idp: IdpClientSettings | None = None
    as_client: AuthorizationServerClient | None = None


def add_forwarding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--issuer", required=True, help="issuer base URL")
    parser.add_argument(
        "--mode",
        choices=[mode.value for mode in MODES],
        default=IdentityMode.IDP_TOKEN.value,
        help="how the user's identity is obtained (default idp_token)",
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        help=f"idp_token: the issuer's inner API secret (default: ${SECRET_ENV})",
    )
    parser.add_argument("--client-id", help="token_exchange, id_jag: the host's OAuth client id at the IdP")
    parser.add_argument(
        "--client-secret",
        default=os.environ.get(CLIENT_SECRET_ENV),
        help=f"token_exchange, id_jag: that client's secret (default: ${CLIENT_SECRET_ENV})",
    )
    parser.add_argument(
        "--as-client",
        default=os.environ.get(AS_CLIENT_ENV),
        metavar="ID:SECRET",
        help=f"id_jag: the host's client at the server's authorization server (default: ${AS_CLIENT_ENV})",
    )
    parser.add_argument(
        "--as-issuer",
        help="id_jag: that authorization server's issuer (default: the origin of --server)",
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


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def configure(args: argparse.Namespace) -> ForwardingSetup:
    """What the flags describe; raises `UsageError` or the runtime's configuration errors."""
    mode = IdentityMode(args.mode)
    provider = MCPProvider(
        provider_id="cli",
        tenant_id=args.tenant,
        server_url=args.server,
        identity_mode=mode,
        allow_insecure_http=args.allow_insecure_http,
    )
    if mode is IdentityMode.IDP_TOKEN:
        if not args.secret:
            raise UsageError(f"--secret (or ${SECRET_ENV}) is required in idp_token mode")
        issuer = EnterpriseTokenSettings(
            issuer_url=args.issuer,
            inner_api_secret=args.secret,
            app_id=args.app_id,
            allow_insecure_http=args.allow_insecure_http,
        )
        return ForwardingSetup(provider, issuer=issuer)
    if not args.client_id or not args.client_secret:
        raise UsageError(
            f"--client-id and --client-secret (or ${CLIENT_SECRET_ENV}) are required in {mode.value} mode"
        )
    idp = IdpClientSettings(
        token_endpoint=HostClient(args.issuer, args.client_id, args.client_secret).token_endpoint,
        client_id=args.client_id,
        client_secret=args.client_secret,
        allow_insecure_http=args.allow_insecure_http,
    )
    if mode is IdentityMode.TOKEN_EXCHANGE:
        return ForwardingSetup(provider, idp=idp)
    client_id, colon, client_secret = (args.as_client or "").partition(":")
    if not colon or not client_id or not client_secret:
        raise UsageError(f"--as-client ID:SECRET (or ${AS_CLIENT_ENV}) is required in id_jag mode")
    as_client = AuthorizationServerClient(
        issuer=args.as_issuer or _origin(args.server),
        client_id=client_id,
        client_secret=client_secret,
        allow_insecure_http=args.allow_insecure_http,
    )
    return ForwardingSetup(provider, idp=idp, as_client=as_client)


@asynccontextmanager
async def open_runtime(args: argparse.Namespace, setup: ForwardingSetup) -> AsyncIterator[MCPToolRuntime]:
    """An open runtime whose broker gets tokens the way `setup`'s mode does."""
    if setup.issuer is not None:
        async with (
            EnterpriseTokenClient(setup.issuer) as token_client,
            MCPToolRuntime(broker=TokenBroker(token_client)) as runtime,
        ):
            yield runtime
        return
    assert setup.idp is not None
    id_tokens = SignInIdTokens(HostClient(args.issuer, setup.idp.client_id, setup.idp.client_secret))
    async with IdpTokenExchange(setup.idp) as exchange:
        if setup.as_client is None:
            broker = TokenBroker(TokenExchangeSource(exchange, id_tokens))
            async with MCPToolRuntime(token_exchange_broker=broker) as runtime:
                yield runtime
        else:
            source = IdJagSource(exchange, id_tokens, {args.server: setup.as_client})
            async with MCPToolRuntime(id_jag_broker=TokenBroker(source)) as runtime:
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
    if isinstance(exc, UsageError):
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
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
