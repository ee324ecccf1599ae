"""`mcp-idfwd demo`: identity forwarding end to end on a throwaway local stack, no set-up needed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from fake_enterprise import SIGNING_ALGORITHMS
from harness.demo import DemoStep, render_step, run_demo
from harness.stack import LocalStack, StackSettings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run identity forwarding end to end on a local issuer and MCP server, and report",
        description=(
            "Start an issuer and an MCP server on free loopback ports, create alice and bob with SSO "
            "grants, call tools as each through client_runtime, show the failures that matter, then sign "
            "carol in with the MCP SDK's OAuth client (the browser flow, auto-login), and compare the "
            "three forwarding modes (issue-token, RFC 8693 token exchange, ID-JAG) call by call. "
            "Exit 0 only if every step behaved as expected."
        ),
    )
    parser.add_argument(
        "--alg", choices=SIGNING_ALGORITHMS, default="RS256", help="the issuer's signing algorithm"
    )
    parser.set_defaults(run=run)


def _print_step(number: int, step: DemoStep) -> None:
    print(render_step(number, step), flush=True)


def run(args: argparse.Namespace) -> int:
    with LocalStack(StackSettings(alg=args.alg, auto_login=True)) as stack:
        print("mcp-idfwd demo: identity forwarding, end to end", flush=True)
        print(f"  issuer      {stack.issuer_url}", flush=True)
        print(f"  MCP server  {stack.server_url}", flush=True)
        stack.start_id_jag_server()
        print(f"  id-jag MCP  {stack.id_jag_server_url} (--auth id-jag, its own authorization server)")
        print("  users       acme/alice and acme/bob (signed in with SSO), acme/carol (never signed in)\n")
        steps = anyio.run(run_demo, stack, _print_step)
    passed = sum(step.ok for step in steps)
    if passed == len(steps):
        print(f"DEMO PASSED: all {len(steps)} steps behaved as expected")
        return 0
    failed = len(steps) - passed
    print(f"DEMO FAILED: {failed} of {len(steps)} steps did not behave as expected", file=sys.stderr)
    return 1
