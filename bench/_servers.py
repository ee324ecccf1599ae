"""Child process of the end-to-end benchmark: issuer, MCP server and baseline server on loopback.

Built the way `harness.stack.LocalStack` builds them (the packages' public `create_app`s, served
by `harness.servers.start_in_thread`), on sockets with Nagle off (see `_support.nodelay_loopback`).
Prints one JSON line saying where they are, then serves until its stdin is closed (the parent
closing the pipe, or dying, stops it).
"""

from __future__ import annotations

import json
import logging
import secrets
import sys

from _baseline import BASELINE_SUBJECT, create_baseline_app
from _support import nodelay_loopback

import fake_enterprise
import fake_mcp_server
from harness.servers import ServedApp, socket_url, start_in_thread

MCP_PATH = "/mcp"


def main() -> int:
    secret = secrets.token_urlsafe(24)
    served: list[ServedApp] = []
    try:
        issuer_sock = nodelay_loopback()
        issuer_url = socket_url(issuer_sock)
        issuer_settings = fake_enterprise.IssuerSettings(issuer_url=issuer_url, secret=secret)
        served.append(start_in_thread(fake_enterprise.create_app(issuer_settings), issuer_sock))

        server_sock = nodelay_loopback()
        server_url = socket_url(server_sock) + MCP_PATH
        server_settings = fake_mcp_server.ServerSettings(issuer_url=issuer_url, resource_url=server_url)
        served.append(start_in_thread(fake_mcp_server.create_app(server_settings), server_sock))

        baseline_sock = nodelay_loopback()
        baseline_url = socket_url(baseline_sock) + MCP_PATH
        served.append(start_in_thread(create_baseline_app(baseline_url, issuer_url), baseline_sock))

        # The SDK turns on INFO logging; a log line per request would be measured on both sides.
        logging.disable(logging.INFO)
        announcement = {
            "issuer_url": issuer_url,
            "server_url": server_url,
            "baseline_url": baseline_url,
            "baseline_subject": BASELINE_SUBJECT,
            "secret": secret,
        }
        print(json.dumps(announcement), flush=True)
        sys.stdin.read()
    finally:
        for app in reversed(served):
            app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
