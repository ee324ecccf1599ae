"""Child process of the end-to-end benchmark: issuer, MCP server and baseline server on loopback.

The issuer and MCP server are a `harness.stack.LocalStack`; the baseline is served beside them.
Prints one JSON line saying where they are, then serves until its stdin is closed (the parent
closing the pipe, or dying, stops it).
"""

from __future__ import annotations

import json
import logging
import sys

from _baseline import BASELINE_SUBJECT, create_baseline_app

from harness.servers import bind_loopback, socket_url, start_in_thread
from harness.stack import MCP_PATH, LocalStack


def main() -> int:
    # The SDK turns on INFO logging; a log line per request would be measured on both sides.
    logging.disable(logging.INFO)
    with LocalStack() as stack:
        sock = bind_loopback()
        baseline_url = socket_url(sock) + MCP_PATH
        baseline = start_in_thread(create_baseline_app(baseline_url, stack.issuer_url), sock)
        try:
            announcement = {
                "issuer_url": stack.issuer_url,
                "server_url": stack.server_url,
                "baseline_url": baseline_url,
                "baseline_subject": BASELINE_SUBJECT,
                "secret": stack.secret,
                "admin_secret": stack.admin_secret,
            }
            print(json.dumps(announcement), flush=True)
            sys.stdin.read()
        finally:
            baseline.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
