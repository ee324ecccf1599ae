"""`mcp-idfwd call`: one tool call forwarded as a given user, printing the result or the mapped error.

`--mode` picks how the user's identity is obtained: `idp_token` (the issuer's inner issue-token
API, `--secret`), `token_exchange` (the user's ID token exchanged at the IdP for an access token
to `--server`) or `id_jag` (an ID-JAG from the IdP redeemed at `--server`'s own authorization
server). The last two act as the host's confidential OAuth client at the IdP (`--client-id`,
`--client-secret`) and get the user's ID token by signing them in (the issuer must run with
`--auto-login`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
from mcp.types import CallToolResult, TextContent

from client_runtime import (
    AuthorizationServerClient,
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IdentityMode,
    IdJagSource,
    IdpClientSettings,
    IdpTokenExchange,
    MCPIdentityForwardingError,
    MCPIssuerConfigError,
    MCPProvider,
    MCPProviderConfigError,
    MCPTokenError,
    MCPToolInvocationError,
    MCPToolRuntime,
    TokenBroker,
    TokenExchangeSource,
)
from harness.id_tokens import HostClient, SignInIdTokens

SECRET_ENV = "MCP_IDFWD_ISSUER_SECRET"
CLIENT_SECRET_ENV = "MCP_IDFWD_CLIENT_SECRET"
AS_CLIENT_ENV = "MCP_IDFWD_AS_CLIENT"
MODES = (IdentityMode.IDP_TOKEN, IdentityMode.TOKEN_EXCHANGE, IdentityMode.ID_JAG)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        example = """--args '{"text": "hi"}'"""
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}); for example {example}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {type(value).__name__}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "call",
        help="call one MCP tool as a user, with a token the IdP vouches for (--mode: how it is obtained)",
        description=(
            "Obtain a token for --user bound to --server (--mode idp_token: the issuer mints it; "
            "token_exchange: the user's ID token exchanged at the IdP, RFC 8693; id_jag: an ID-JAG from "
            "the IdP redeemed at the server's own authorization server), call --tool with it over MCP "
            "streamable HTTP, and print the result. On an identity error, print the client_runtime "
            "exception and what a host should tell its user; exit 1."
        ),
    )
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
    parser.add_argument("--user", required=True, help="the end user the call is made for")
    parser.add_argument("--tool", required=True, help="tool name, e.g. whoami")
    parser.add_argument("--args", type=_json_object, default={}, help="tool arguments as a JSON object")
    parser.add_argument("--user-type", choices=("account", "end_user"), default="account")
    parser.add_argument("--app-id", default="", help="app id sent to the issuer (default: empty)")
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain http:// to --issuer and --server off loopback (secrets travel in clear text)",
    )
    parser.set_defaults(run=run)


def _result_text(result: CallToolResult) -> str:
    if result.structured_content is not None:
        return json.dumps(result.structured_content, indent=2)
    return "\n".join(
        block.text if isinstance(block, TextContent) else block.model_dump_json() for block in result.content
    )


class _Usage(Exception):
    """A missing option for the chosen mode."""


@dataclass(frozen=True)
class _Setup:
    provider: MCPProvider
    issuer: EnterpriseTokenSettings | None = None
    idp: IdpClientSettings | None = None
    as_client: AuthorizationServerClient | None = None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _configure(args: argparse.Namespace) -> _Setup:
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
            raise _Usage(f"--secret (or ${SECRET_ENV}) is required in idp_token mode")
        issuer = EnterpriseTokenSettings(
            issuer_url=args.issuer,
            inner_api_secret=args.secret,
            app_id=args.app_id,
            allow_insecure_http=args.allow_insecure_http,
        )
        return _Setup(provider, issuer=issuer)
    if not args.client_id or not args.client_secret:
        raise _Usage(
            f"--client-id and --client-secret (or ${CLIENT_SECRET_ENV}) are required in {mode.value} mode"
        )
    idp = IdpClientSettings(
        token_endpoint=HostClient(args.issuer, args.client_id, args.client_secret).token_endpoint,
        client_id=args.client_id,
        client_secret=args.client_secret,
        allow_insecure_http=args.allow_insecure_http,
    )
    if mode is IdentityMode.TOKEN_EXCHANGE:
        return _Setup(provider, idp=idp)
    client_id, colon, client_secret = (args.as_client or "").partition(":")
    if not colon or not client_id or not client_secret:
        raise _Usage(f"--as-client ID:SECRET (or ${AS_CLIENT_ENV}) is required in id_jag mode")
    as_client = AuthorizationServerClient(
        issuer=args.as_issuer or _origin(args.server),
        client_id=client_id,
        client_secret=client_secret,
        allow_insecure_http=args.allow_insecure_http,
    )
    return _Setup(provider, idp=idp, as_client=as_client)


@asynccontextmanager
async def _runtime(args: argparse.Namespace, setup: _Setup) -> AsyncIterator[MCPToolRuntime]:
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


async def _call(args: argparse.Namespace, setup: _Setup) -> CallToolResult:
    async with _runtime(args, setup) as runtime:
        return await runtime.invoke(
            setup.provider,
            args.tool,
            args.args,
            tenant_id=args.tenant,
            user_id=args.user,
            user_type=args.user_type,
        )


def run(args: argparse.Namespace) -> int:
    try:
        setup = _configure(args)
    except _Usage as exc:
        print(f"call: {exc}", file=sys.stderr)
        return 2
    except (MCPProviderConfigError, MCPIssuerConfigError) as exc:
        hint = " (--allow-insecure-http)" if "allow_insecure_http" in str(exc) else ""
        print(f"call: invalid configuration: {exc}{hint}", file=sys.stderr)
        return 2
    try:
        result = anyio.run(_call, args, setup)
    except MCPProviderConfigError as exc:
        print(f"call: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except MCPIdentityForwardingError as exc:
        reason = exc.reason or "no reason given"
        print(f"call: {args.server} refused the token (HTTP {exc.status_code}): {reason}", file=sys.stderr)
        print(f"  a host would tell its user: {exc.user_message}", file=sys.stderr)
        return 1
    except (MCPTokenError, MCPToolInvocationError) as exc:
        print(f"call: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"  a host would tell its user: {exc.user_message}", file=sys.stderr)
        return 1
    if result.is_error:
        print(f"call: the tool reported an error:\n{_result_text(result)}", file=sys.stderr)
        return 1
    print(_result_text(result))
    return 0
