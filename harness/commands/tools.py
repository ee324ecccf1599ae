"""`mcp-idfwd tools`: list the tools an MCP server offers a user, with that user's identity forwarded."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio
from mcp.types import Tool

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


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tools",
        help="list the tools an MCP server offers a user, with a token the issuer minted for them",
        description=(
            "Ask the issuer for a token for --user bound to --server, list the server's tools with it"
            " (every page), and print one line per tool: its name and the first line of its description."
            " Failures are reported as `call` reports them."
        ),
    )
    add_forwarding_arguments(parser)
    parser.add_argument(
        "--json", action="store_true", help="print the tools as the server described them (a JSON array)"
    )
    parser.set_defaults(run=run)


async def _list(args: argparse.Namespace, setup: ForwardingSetup) -> list[Tool]:
    async with open_runtime(args, setup) as runtime:
        return await runtime.list_tools(
            setup.provider, tenant_id=args.tenant, user_id=args.user, user_type=args.user_type
        )


def _line(tool: Tool, width: int) -> str:
    summary = (tool.description or "").strip().splitlines()
    return f"{tool.name:<{width}}  {summary[0] if summary else ''}".rstrip()


def run(args: argparse.Namespace) -> int:
    try:
        setup = configure(args)
    except (UsageError, MCPProviderConfigError, MCPIssuerConfigError) as exc:
        return report_invalid_configuration("tools", exc)
    try:
        tools = anyio.run(_list, args, setup)
    except (MCPProviderConfigError, MCPTokenError, MCPToolInvocationError) as exc:
        return report_failure("tools", args, exc)
    if args.json:
        described = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
        print(json.dumps(described, indent=2))
        return 0
    if not tools:
        print(f"{args.server} offers no tools to {args.tenant}/{args.user}", file=sys.stderr)
        return 0
    width = max(len(tool.name) for tool in tools)
    for tool in tools:
        print(_line(tool, width))
    return 0
