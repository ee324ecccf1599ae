"""`mcp-idfwd call`: one tool call forwarded as a given user, printing the result or the mapped error.

`--mode` picks how the user's identity is obtained (see `harness.commands._forwarding`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio
from mcp.types import CallToolResult, TextContent

from client_runtime import (
    MCPIssuerConfigError,
    MCPProviderConfigError,
    MCPTokenError,
    MCPToolInvocationError,
)
from harness.commands._forwarding import (
    ForwardingSetup,
    UsageError,
    add_forwarding_arguments,
    configure,
    open_runtime,
    report_failure,
    report_invalid_configuration,
)


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
    add_forwarding_arguments(parser)
    parser.add_argument("--tool", required=True, help="tool name, e.g. whoami")
    parser.add_argument("--args", type=_json_object, default={}, help="tool arguments as a JSON object")
    # examples/forward_identity.py once spelled it `--arguments`: accepted, not advertised.
    parser.add_argument("--arguments", type=_json_object, dest="args", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def _result_text(result: CallToolResult) -> str:
    if result.structured_content is not None:
        return json.dumps(result.structured_content, indent=2)
    return "\n".join(
        block.text if isinstance(block, TextContent) else block.model_dump_json() for block in result.content
    )


async def _call(args: argparse.Namespace, setup: ForwardingSetup) -> CallToolResult:
    async with open_runtime(args, setup) as runtime:
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
        setup = configure(args)
    except (UsageError, MCPProviderConfigError, MCPIssuerConfigError) as exc:
        return report_invalid_configuration("call", exc)
    try:
        result = anyio.run(_call, args, setup)
    except (MCPProviderConfigError, MCPTokenError, MCPToolInvocationError) as exc:
        return report_failure("call", args, exc)
    if result.is_error:
        print(f"call: the tool reported an error:\n{_result_text(result)}", file=sys.stderr)
        return 1
    print(_result_text(result))
    return 0
