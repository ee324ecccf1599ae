"""`mcp-idfwd call`: one tool call forwarded as a given user, printing the result or the mapped error."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio
from mcp.types import CallToolResult, TextContent

from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IdentityMode,
    MCPIdentityForwardingError,
    MCPIssuerConfigError,
    MCPProvider,
    MCPProviderConfigError,
    MCPTokenError,
    MCPToolInvocationError,
    MCPToolRuntime,
    TokenBroker,
)

SECRET_ENV = "MCP_IDFWD_ISSUER_SECRET"


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
        help="call one MCP tool as a user, with a token the issuer minted for that user and server",
        description=(
            "Ask the issuer for a token for --user bound to --server, call --tool with it over MCP "
            "streamable HTTP, and print the result. On an identity error, print the client_runtime "
            "exception and what a host should tell its user; exit 1."
        ),
    )
    parser.add_argument("--issuer", required=True, help="issuer base URL")
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        required=SECRET_ENV not in os.environ,
        help=f"the issuer's inner API secret (default: ${SECRET_ENV})",
    )
    parser.add_argument("--tenant", required=True, help="tenant id")
    parser.add_argument("--server", required=True, help="MCP endpoint URL (also the token's audience)")
    parser.add_argument("--user", required=True, help="the end user the call is made for")
    parser.add_argument("--tool", required=True, help="tool name, e.g. whoami")
    parser.add_argument("--args", type=_json_object, default={}, help="tool arguments as a JSON object")
    # examples/forward_identity.py once spelled it `--arguments`: accepted, not advertised.
    parser.add_argument("--arguments", type=_json_object, dest="args", help=argparse.SUPPRESS)
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


def _configure(args: argparse.Namespace) -> tuple[MCPProvider, EnterpriseTokenSettings]:
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


async def _call(
    args: argparse.Namespace, provider: MCPProvider, settings: EnterpriseTokenSettings
) -> CallToolResult:
    async with (
        EnterpriseTokenClient(settings) as token_client,
        MCPToolRuntime(broker=TokenBroker(token_client)) as runtime,
    ):
        return await runtime.invoke(
            provider, args.tool, args.args, tenant_id=args.tenant, user_id=args.user, user_type=args.user_type
        )


def run(args: argparse.Namespace) -> int:
    try:
        provider, settings = _configure(args)
    except (MCPProviderConfigError, MCPIssuerConfigError) as exc:
        hint = " (--allow-insecure-http)" if "allow_insecure_http" in str(exc) else ""
        print(f"call: invalid configuration: {exc}{hint}", file=sys.stderr)
        return 2
    try:
        result = anyio.run(_call, args, provider, settings)
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
