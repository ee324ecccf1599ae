"""First-call and warm-call latency of the three forwarding modes, side by side in one run.

    python bench/modes.py [--n 200] [--repeats 3] [--quick] [--json-out PATH]

One `MCPToolRuntime` forwards `whoami` in each mode: `idp_token` (the issuer's inner
issue-token API), `token_exchange` (the user's ID token exchanged at the IdP, RFC 8693) and
`id_jag` (ID token → ID-JAG at the IdP → the MCP server's own authorization server, SEP-990).
A *first call* is a user's first call in that mode: the token is obtained and a session opened
(every sample a user not seen before; their ID token is already held by the host, as a host
holds its users' SSO sessions, so signing in is not counted). A *warm call* is a later call of
one user: cached token, pooled session. The modes take turns sample by sample (`interleave`).
The IdP and both MCP servers run in a child process (bench/_mode_servers.py). Exits 1 if any
call answers as someone other than its user.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Awaitable, Callable

import anyio
from _support import (
    Report,
    add_json_out_argument,
    interleave,
    machine_summary,
    markdown_table,
    min_median,
    operations_per_mode,
    spawn,
)

from client_runtime import AuthorizationServerClient, IdentityMode, MCPProvider, MCPToolRuntime
from fake_enterprise import AdminClient
from harness.id_tokens import HostClient, SignInIdTokens
from harness.stack import TOKEN_MODES, open_host

TENANT = "acme"
WARMUP = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="samples per repeat (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats (default 3)")
    parser.add_argument("--quick", action="store_true", help="n = 20, 2 repeats (rough figures)")
    add_json_out_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 20, 2
    return args


class WrongIdentity(Exception):
    pass


def _caller(
    runtime: MCPToolRuntime, provider: MCPProvider, subjects: dict[str, str]
) -> Callable[[str], Awaitable[None]]:
    async def call(user_id: str) -> None:
        result = await runtime.invoke(provider, "whoami", tenant_id=TENANT, user_id=user_id)
        if result.is_error or (result.structured_content or {}).get("sub") != subjects[user_id]:
            raise WrongIdentity(f"{provider.identity_mode.value}: {user_id} did not arrive as themselves")

    return call


async def measure(args: argparse.Namespace) -> int:
    logging.disable(logging.INFO)
    argv = [sys.executable, "bench/_mode_servers.py"]
    with spawn(argv, announces=lambda line: line.startswith("{")) as child:
        where = json.loads(child.first_line)
        admin = AdminClient(where["issuer_url"], where["admin_secret"])
        host_client = HostClient(where["issuer_url"], where["host_client_id"], where["host_client_secret"])
        as_client = AuthorizationServerClient(
            where["as_issuer"], where["as_client_id"], where["as_client_secret"]
        )
        admin.allow_id_jag(
            TENANT,
            host_client.client_id,
            as_client.issuer,
            [where["id_jag_server_url"]],
            audience_client_id=as_client.client_id,
        )
        firsts = operations_per_mode(n=args.n, repeats=args.repeats, warmup=WARMUP)
        users = {mode: [f"{mode.value}-first-{i}" for i in range(firsts)] for mode in TOKEN_MODES}
        users |= {mode: [*users[mode], f"{mode.value}-warm"] for mode in TOKEN_MODES}
        subjects: dict[str, str] = {}
        id_tokens = SignInIdTokens(host_client)
        limiter = anyio.CapacityLimiter(8)

        async def prepare(mode: IdentityMode, user_id: str) -> None:
            async with limiter:
                created = await anyio.to_thread.run_sync(admin.create_user, TENANT, user_id)
                subjects[user_id] = created["sub"]
                if mode is IdentityMode.IDP_TOKEN:
                    await anyio.to_thread.run_sync(lambda: admin.grant(TENANT, user_id))
                else:
                    await id_tokens(TENANT, user_id)  # the host's SSO session: held before the first call

        async with anyio.create_task_group() as group:
            for mode in TOKEN_MODES:
                for user_id in users[mode]:
                    group.start_soon(prepare, mode, user_id)
        servers = {
            IdentityMode.IDP_TOKEN: where["server_url"],
            IdentityMode.TOKEN_EXCHANGE: where["server_url"],
            IdentityMode.ID_JAG: where["id_jag_server_url"],
        }
        async with open_host(
            issuer_url=where["issuer_url"],
            inner_secret=where["secret"],
            host=host_client,
            id_tokens=id_tokens,
            servers=servers,
            id_jag_clients={where["id_jag_server_url"]: as_client},
            tenant_id=TENANT,
        ) as host:
            callers = {mode: _caller(host.runtime, host.providers[mode], subjects) for mode in TOKEN_MODES}
            fresh = {mode: iter(users[mode][:-1]) for mode in TOKEN_MODES}

            def first(mode: IdentityMode) -> Callable[[], Awaitable[None]]:
                return lambda: callers[mode](next(fresh[mode]))

            def warm(mode: IdentityMode) -> Callable[[], Awaitable[None]]:
                return lambda: callers[mode](users[mode][-1])

            try:
                first_calls = await interleave(
                    {mode.value: first(mode) for mode in TOKEN_MODES},
                    n=args.n,
                    repeats=args.repeats,
                    warmup=WARMUP,
                )
                warm_calls = await interleave(
                    {mode.value: warm(mode) for mode in TOKEN_MODES}, n=args.n, repeats=args.repeats
                )
            except WrongIdentity as exc:
                print(f"modes: FAIL: {exc}", file=sys.stderr)
                return 1
        admin.close()

    report = Report("modes")
    rows: list[list[object]] = []
    for mode in TOKEN_MODES:
        cold, hot = first_calls[mode.value], warm_calls[mode.value]
        report.measured(
            f"{mode.value}.first_call", cold, "ms", label=f"{mode.value}: first call", headline=True
        )
        # Warm calls cost the same in every mode (one MCP request): the README shows one of them.
        warm_headline = mode is IdentityMode.IDP_TOKEN
        report.measured(
            f"{mode.value}.warm_call", hot, "ms", label=f"{mode.value}: warm call", headline=warm_headline
        )
        rows.append(
            [
                mode.value,
                min_median(cold, "ms"),
                f"{cold.p95 * 1e3:.2f}",
                min_median(hot, "ms"),
                f"{hot.p95 * 1e3:.2f}",
            ]
        )
    print(f"### Forwarding modes: first call and warm call ({machine_summary()})")
    print()
    print(
        f"whoami through one MCPToolRuntime per mode; n={args.n} x {args.repeats} repeats, interleaved;\n"
        "IdP and both MCP servers in a child process (bench/_mode_servers.py). Figures are min/median\n"
        "across repeats, in ms."
    )
    print()
    headers = ["mode", "first call ms (min/median)", "first p95", "warm call ms (min/median)", "warm p95"]
    print(markdown_table(headers, rows))
    print()
    report.write(args.json_out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return anyio.run(measure, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
