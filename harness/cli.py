"""The `mcp-idfwd` command line: one subcommand per module in `harness.commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from harness.commands import bench, call, conformance, demo, issuer, server, up

_COMMANDS = (demo, up, issuer, server, call, conformance, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-idfwd",
        description="Forward a verified end user's identity to MCP servers, and prove it end to end.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
