"""`mcp-idfwd conformance` (not built yet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("conformance", help="(not built yet)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print("mcp-idfwd conformance is not built yet", file=sys.stderr)
    return 2
