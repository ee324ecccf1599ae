"""Child process of the issuer benchmark when `python -m harness issuer` cannot be used as is.

Same as `mcp-idfwd issuer --port 0 --alg ALG` (the public `fake_enterprise.create_app`, served
in the foreground by `harness.servers.serve_forever`, the same "issuer: URL" line on start),
but on a socket with Nagle off: see `_support.nodelay_loopback` for why.
"""

from __future__ import annotations

import argparse
import os
import sys

from _support import nodelay_loopback

from fake_enterprise import SIGNING_ALGORITHMS, IssuerSettings, create_app
from harness.servers import serve_forever, socket_url


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alg", choices=SIGNING_ALGORITHMS, default="RS256")
    parser.add_argument("--token-ttl", type=int, default=300)
    args = parser.parse_args()
    sock = nodelay_loopback()
    url = socket_url(sock)
    settings = IssuerSettings(
        issuer_url=url,
        secret=os.environ["MCP_IDFWD_ISSUER_SECRET"],
        alg=args.alg,
        token_ttl=args.token_ttl,
    )
    app = create_app(settings)
    print(f"issuer: {url}", flush=True)
    serve_forever(app, sock, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
