"""The `mcp-idfwd` command line: one subcommand per module in `harness.commands`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("mcp-idfwd")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at the top: the commands pull in the mcp SDK, uvicorn and cryptography,
    # and a Ctrl-C during those imports must end in one line, not a traceback (see `main`).
    from harness.commands import bench, call, conformance, decode, demo, issuer, server, tools, up

    parser = argparse.ArgumentParser(
        prog="mcp-idfwd",
        description="Forward a verified end user's identity to MCP servers, and prove it end to end.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (demo, up, issuer, server, call, tools, conformance, decode, bench):
        command.register(subparsers)
    return parser


def _stdout_closed() -> int:
    # The reader went away (`mcp-idfwd call ... | head`): nothing more can be said on stdout, and
    # Python's own flush at exit must not print a BrokenPipeError traceback either.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
            return int(args.run(args) or 0)
        finally:
            sys.stdout.flush()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_closed()


if __name__ == "__main__":
    sys.exit(main())
