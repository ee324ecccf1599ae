"""Call an MCP tool as one of your users, with their identity forwarded (copy this into your host).

    export MCP_IDFWD_ISSUER_SECRET=...          # the issuer's inner API secret
    python examples/forward_identity.py --issuer http://127.0.0.1:9000 \
        --server http://127.0.0.1:9100/mcp --tenant acme --user alice \
        [--tool echo --args '{"text": "hi"}']

Try it against the local stack: `mcp-idfwd up` prints the URLs and the inner secret (`secret`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio

from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    IdentityMode,
    MCPProvider,
    MCPTokenError,
    MCPToolInvocationError,
    MCPToolRuntime,
    TokenBroker,
)

SECRET_ENV = "MCP_IDFWD_ISSUER_SECRET"


async def forward(args: argparse.Namespace, secret: str) -> int:
    settings = EnterpriseTokenSettings(issuer_url=args.issuer, inner_api_secret=secret)
    provider = MCPProvider(
        provider_id="example",
        tenant_id=args.tenant,
        server_url=args.server,  # also the audience the token is minted for
        identity_mode=IdentityMode.IDP_TOKEN,
    )
    # One client, broker and runtime for the whole host process: the broker caches tokens per
    # user, and the open runtime keeps each user's MCP session for their next calls.
    async with (
        EnterpriseTokenClient(settings) as token_client,
        MCPToolRuntime(broker=TokenBroker(token_client)) as runtime,
    ):
        try:
            result = await runtime.invoke(
                provider, args.tool, args.args, tenant_id=args.tenant, user_id=args.user
            )
        except MCPTokenError as exc:
            # Identity could not be obtained or was refused: the tool did not run. Show the user
            # exc.user_message; log the exception (it never contains a token).
            print(f"{type(exc).__name__}: {exc}\nshow the user: {exc.user_message}", file=sys.stderr)
            return 1
        except MCPToolInvocationError as exc:
            print(f"MCP server unavailable: {exc}", file=sys.stderr)
            return 1
    if result.structured_content is not None:
        print(json.dumps(result.structured_content, indent=2))
    else:
        print("\n".join(getattr(block, "text", str(block)) for block in result.content))
    return 2 if result.is_error else 0


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True, help="issuer base URL")
    parser.add_argument("--server", required=True, help="MCP endpoint URL, e.g. http://127.0.0.1:9100/mcp")
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        help=f"the issuer's inner API secret (default: ${SECRET_ENV}, which `ps` does not show)",
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--tool", default="whoami")
    # The same flags as `mcp-idfwd call`; `--arguments` is an old spelling, still accepted.
    parser.add_argument("--args", type=json_object, default={}, help="tool arguments as a JSON object")
    parser.add_argument("--arguments", type=json_object, dest="args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.secret:
        parser.error(f"set {SECRET_ENV} (or --secret) to the issuer's inner API secret")
    return anyio.run(forward, args, args.secret)


if __name__ == "__main__":
    raise SystemExit(main())
