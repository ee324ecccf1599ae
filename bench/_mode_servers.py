"""Child process of the modes benchmark: the IdP (auto-login), the default MCP server and the id-jag one.

A `harness.stack.LocalStack` with the id-jag server and the host's OAuth client at the IdP. Prints
one JSON line saying where they are and the host's credentials, then serves until its stdin is
closed (the parent closing the pipe, or dying, stops it).
"""

from __future__ import annotations

import json
import logging
import sys

from harness.stack import LocalStack, StackSettings


def main() -> int:
    # The SDK turns on INFO logging; a log line per request would be measured in every mode.
    logging.disable(logging.INFO)
    with LocalStack(StackSettings(auto_login=True)) as stack:
        stack.start_id_jag_server()
        host, as_client = stack.host_client(), stack.id_jag_client
        announcement = {
            "issuer_url": stack.issuer_url,
            "secret": stack.secret,
            "admin_secret": stack.admin_secret,
            "server_url": stack.server_url,
            "id_jag_server_url": stack.id_jag_server_url,
            "host_client_id": host.client_id,
            "host_client_secret": host.client_secret,
            "as_issuer": as_client.issuer,
            "as_client_id": as_client.client_id,
            "as_client_secret": as_client.client_secret,
        }
        print(json.dumps(announcement), flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
