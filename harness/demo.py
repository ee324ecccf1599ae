"""The demo: identity forwarding end to end on a local stack, and the failures that matter.

Every step calls through `client_runtime` the way a host would (or, where the point is what
the server refuses, sends the request itself; the sixth step signs in with the mcp SDK's OAuth
client) and records, per actor, what was sent, what the server saw and whether that is what
must happen. The last step compares the three token forwarding modes (issue-token, RFC 8693
token exchange, ID-JAG) call by call, from what the stack's servers recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client import Client
from mcp.client.auth import OAuthFlowError, OAuthTokenError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from client_runtime import (
    EnterpriseTokenClient,
    EnterpriseTokenSettings,
    MCPIdentityRefreshError,
    MCPMissingUserError,
    MCPNoRefreshTokenError,
    MCPProvider,
    MCPTokenError,
    MCPToolRuntime,
    TokenBroker,
    TokenKey,
)
from harness.call_log import Call
from harness.conformance import initialize_request, parse_challenge
from harness.id_tokens import SignInIdTokens
from harness.oauth_login import OAuthLoginError, auto_login_provider
from harness.stack import TOKEN_MODES, LocalStack

__all__ = ["DemoRow", "DemoStep", "render_step", "run_demo"]

TENANT = "acme"
OTHER_AUDIENCE = "http://127.0.0.1:9/another-mcp-server/mcp"


@dataclass(frozen=True)
class DemoRow:
    who: str
    sent: str
    saw: str
    ok: bool


@dataclass(frozen=True)
class DemoStep:
    title: str
    expected: str
    rows: tuple[DemoRow, ...]

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)


def render_step(number: int, step: DemoStep) -> str:
    header = ("who", "what was sent", "what the server saw", "result")
    rows = [(row.who, row.sent, row.saw, "PASS" if row.ok else "FAIL") for row in step.rows]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  " + "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    lines = [
        f"Step {number}: {step.title}",
        f"  expected: {step.expected}",
        line(header),
        line(tuple("-" * width for width in widths)),
        *(line(row) for row in rows),
    ]
    return "\n".join(lines) + "\n"


# --- what a token and a result say ----------------------------------------------------------------


def _describe_token(token: str | None, server_url: str) -> str:
    """The claims that matter, read without verification (it is our own token, for display)."""
    if token is None:
        return "no token"
    claims = jwt.decode(token, options={"verify_signature": False})
    aud = claims.get("aud")
    aud_text = "this server" if aud == server_url else repr(aud)
    user = f"{claims.get('tenant_id')}/{claims.get('preferred_username')}"
    return f"Bearer JWT for {user} aud={aud_text}"


def _structured(result: CallToolResult) -> Any:
    if result.structured_content is not None:
        return result.structured_content
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    try:
        return json.loads(texts[0]) if len(texts) == 1 else texts
    except ValueError:
        return texts


def _note_texts(value: Any) -> list[str]:
    """The note texts in a `list_notes` result, whatever shape the server wraps them in."""
    if isinstance(value, dict):
        for key in ("notes", "result"):
            if key in value:
                return _note_texts(value[key])
        return [str(value.get("text", value))]
    if isinstance(value, list):
        return [item if isinstance(item, str) else str(item.get("text", item)) for item in value]
    return [str(value)]


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}"


# --- the steps ------------------------------------------------------------------------------------


@dataclass
class _Host:
    """The host side of the demo: a token cache over the stack's issuer, and a runtime using it."""

    stack: LocalStack
    token_client: EnterpriseTokenClient
    broker: TokenBroker
    runtime: MCPToolRuntime
    provider: MCPProvider
    # The opaque `sub` the issuer gave each demo user: what the server must see for them.
    subjects: dict[str, str]

    def cached_token(self, user_id: str) -> str | None:
        cached = self.broker.cached(TokenKey(TENANT, user_id, "account", self.provider.server_url))
        return cached.token if cached is not None else None

    def fresh_cache(self) -> None:
        """Forget every cached token, as when they have all expired."""
        self.broker = TokenBroker(self.token_client)
        self.runtime = MCPToolRuntime(broker=self.broker)


async def _whoami_row(host: _Host, user_id: str) -> DemoRow:
    try:
        result = await host.runtime.invoke(host.provider, "whoami", {}, tenant_id=TENANT, user_id=user_id)
    except MCPTokenError as exc:
        return DemoRow(user_id, "whoami", f"nothing: the call failed with {_failure(exc)}", False)
    seen = _structured(result)
    sent = f"whoami, {_describe_token(host.cached_token(user_id), host.provider.server_url)}"
    if result.is_error or not isinstance(seen, dict):
        return DemoRow(user_id, sent, f"tool error: {seen}", False)
    saw = f"sub={seen.get('sub')} email={seen.get('email')} tenant={seen.get('tenant_id')}"
    acted_as = seen.get("sub") == host.subjects[user_id] and seen.get("tenant_id") == TENANT
    return DemoRow(user_id, sent, saw, acted_as)


async def _step_whoami(host: _Host) -> DemoStep:
    rows = [await _whoami_row(host, user) for user in ("alice", "bob")]
    return DemoStep(
        "each user calls whoami through client_runtime",
        "the server verifies each token and acts as that user",
        tuple(rows),
    )


async def _step_notes(host: _Host) -> DemoStep:
    notes = {"alice": "alice: renew the passport", "bob": "bob: call the bank"}
    rows: list[DemoRow] = []
    for user, text in notes.items():
        result = await host.runtime.invoke(
            host.provider, "add_note", {"text": text}, tenant_id=TENANT, user_id=user
        )
        saw = "tool error" if result.is_error else "stored"
        rows.append(DemoRow(user, f"add_note({text!r})", saw, not result.is_error))
    for user, text in notes.items():
        result = await host.runtime.invoke(host.provider, "list_notes", {}, tenant_id=TENANT, user_id=user)
        seen = _note_texts(_structured(result))
        rows.append(DemoRow(user, "list_notes()", f"notes={seen}", not result.is_error and seen == [text]))
    return DemoStep(
        "each user writes and lists notes",
        "each user sees exactly their own notes, never the other's",
        tuple(rows),
    )


async def _step_revoke(host: _Host) -> DemoStep:
    host.stack.admin.revoke(TENANT, "bob")
    host.fresh_cache()
    try:
        await host.runtime.invoke(host.provider, "whoami", {}, tenant_id=TENANT, user_id="bob")
    except MCPIdentityRefreshError as exc:
        bob = DemoRow("bob", "token request (grant revoked)", f"not called: host got {_failure(exc)}", True)
    except MCPTokenError as exc:
        bob = DemoRow("bob", "token request (grant revoked)", f"not called: host got {_failure(exc)}", False)
    else:
        bob = DemoRow("bob", "whoami", "a call as bob: his revoked grant still worked", False)
    return DemoStep(
        "bob's SSO grant is revoked at the issuer (token cache empty, as when his token has expired)",
        "bob gets the re-authenticate error and never reaches the server; alice keeps working",
        (bob, await _whoami_row(host, "alice")),
    )


async def _expect_refusal(
    who: str, sent: str, call: Callable[[], Awaitable[Any]], expected: type[MCPTokenError]
) -> DemoRow:
    try:
        await call()
    except expected as exc:
        return DemoRow(who, sent, f"not called: host got {_failure(exc)}", True)
    except MCPTokenError as exc:
        return DemoRow(who, sent, f"not called: host got {_failure(exc)}, not {expected.__name__}", False)
    return DemoRow(who, sent, "the call went through", False)


async def _step_fail_closed(host: _Host) -> DemoStep:
    no_user = await _expect_refusal(
        "(no user)",
        "nothing (refused before any I/O)",
        lambda: host.runtime.invoke(host.provider, "whoami", {}, tenant_id=TENANT, user_id=None),
        MCPMissingUserError,
    )
    carol = await _expect_refusal(
        "carol",
        "token request (never signed in with SSO)",
        lambda: host.runtime.invoke(host.provider, "whoami", {}, tenant_id=TENANT, user_id="carol"),
        MCPNoRefreshTokenError,
    )
    return DemoStep(
        "calls that cannot carry a verified user",
        "the host refuses them (fail closed); nothing is sent anonymously or as someone else",
        (no_user, carol),
    )


async def _server_verdict(server_url: str, token: str) -> tuple[int, str]:
    """Send an MCP initialize with `token`; the status and the server's challenge, summarised."""
    body = initialize_request("mcp-idfwd-demo")
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(timeout=10.0) as http,
        http.stream("POST", server_url, json=body, headers=headers) as response,
    ):
        status, raw = response.status_code, response.headers.get("www-authenticate")
    challenge = parse_challenge(raw)
    if challenge is None:
        return status, f"{status}, no challenge"
    error = challenge.params.get("error", "-")
    description = challenge.params.get("error_description")
    return status, f"{status} {error}" + (f" ({description})" if description else "")


async def _step_server_refuses(host: _Host) -> DemoStep:
    server_url = host.provider.server_url
    genuine = await host.token_client.issue_token(tenant_id=TENANT, user_id="alice", audience=server_url)
    genuine_header = jwt.get_unverified_header(genuine.token)
    claims = jwt.decode(genuine.token, options={"verify_signature": False})
    mallory_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {**claims, "jti": f"forged-{time.time_ns()}"},
        mallory_key,
        algorithm="RS256",
        headers={"kid": genuine_header.get("kid"), "typ": genuine_header.get("typ", "JWT")},
    )
    rows: list[DemoRow] = []
    status, saw = await _server_verdict(server_url, forged)
    rows.append(DemoRow("mallory", "JWT claiming alice's sub, signed with mallory's key", saw, status == 401))
    elsewhere = await host.token_client.issue_token(
        tenant_id=TENANT, user_id="alice", audience=OTHER_AUDIENCE
    )
    status, saw = await _server_verdict(server_url, elsewhere.token)
    rows.append(DemoRow("alice", "alice's genuine JWT, issued for another server", saw, status == 401))
    return DemoStep(
        "tokens the server must not trust",
        "the server answers 401 invalid_token to a forged token and to a token for another audience",
        tuple(rows),
    )


async def _step_oauth_sign_in(host: _Host) -> DemoStep:
    server_url = host.provider.server_url
    provider, _, _ = auto_login_provider(server_url, f"{TENANT}/carol", client_name="mcp-idfwd demo")
    sent = "401 -> PRM -> AS metadata -> register -> authorize (login_hint) -> token -> whoami"
    try:
        async with (
            httpx2.AsyncClient(auth=provider, timeout=10.0) as http,
            Client(streamable_http_client(server_url, http_client=http)) as client,
        ):
            result = await client.call_tool("whoami", {})
    except (OAuthLoginError, OAuthFlowError, OAuthTokenError) as exc:
        oauth = DemoRow("carol", sent, f"nothing: the sign-in failed with {_failure(exc)}", False)
    else:
        seen = _structured(result)
        ok = (
            isinstance(seen, dict)
            and seen.get("sub") == host.subjects["carol"]
            and seen.get("preferred_username") == "carol"
            and seen.get("tenant_id") == TENANT
        )
        saw = (
            f"sub={seen.get('sub')} user={seen.get('preferred_username')} tenant={seen.get('tenant_id')}"
            if isinstance(seen, dict)
            else str(seen)
        )
        oauth = DemoRow("carol (SDK OAuth client)", sent, saw, ok and not result.is_error)
    # Signing in stored carol's SSO grant: the host's forwarding now works for her too.
    host.fresh_cache()
    return DemoStep(
        "carol signs in with the MCP SDK's OAuth client (browser flow, issuer auto-login)",
        "the client finds the issuer from the server's 401, signs carol in, and the server sees carol;"
        " the sign-in stored her SSO grant, so forwarding works for her afterwards",
        (oauth, await _whoami_row(host, "carol")),
    )


def _calls_made(calls: list[Call]) -> str:
    """The calls in order, repeats of one call folded: `mcp POST /mcp x3`."""
    parts: list[str] = []
    last, count = "", 0
    for described in (call.describe() for call in calls):
        if described == last:
            count += 1
            continue
        if last:
            parts.append(last + (f" x{count}" if count > 1 else ""))
        last, count = described, 1
    if last:
        parts.append(last + (f" x{count}" if count > 1 else ""))
    return "; ".join(parts) or "none"


async def _step_modes(host: _Host) -> DemoStep:
    stack = host.stack
    user = "alice"
    id_tokens = SignInIdTokens(stack.host_client())
    await id_tokens(TENANT, user)  # the host's SSO session for alice: held before her first call
    rows: list[DemoRow] = []
    async with stack.open_host(TENANT, id_tokens=id_tokens) as modes:
        for mode in TOKEN_MODES:
            for call in ("first", "warm"):
                mark = len(stack.calls)
                who = f"{user}, {mode.value}, {call} call"
                try:
                    result = await modes.runtime.invoke(
                        modes.providers[mode], "whoami", {}, tenant_id=TENANT, user_id=user
                    )
                except MCPTokenError as exc:
                    rows.append(DemoRow(who, _calls_made(stack.calls.since(mark)), _failure(exc), False))
                    continue
                seen = _structured(result)
                ok = (
                    isinstance(seen, dict)
                    and not result.is_error
                    and seen.get("sub") == host.subjects[user]
                    and seen.get("preferred_username") == user
                )
                saw = (
                    f"sub={seen.get('sub')} user={seen.get('preferred_username')} iss={seen.get('iss')}"
                    if isinstance(seen, dict)
                    else str(seen)
                )
                rows.append(DemoRow(who, _calls_made(stack.calls.since(mark)), saw, ok))
    return DemoStep(
        "the three forwarding modes side by side: issue-token, token exchange (RFC 8693), ID-JAG (SEP-990)",
        "each mode's server sees alice; a first call obtains a token (idp_token: the inner issue-token API;"
        " token_exchange: her ID token exchanged at the IdP; id_jag: an ID-JAG from the IdP redeemed at the"
        " id-jag server's own authorization server), a warm call is one MCP request",
        tuple(rows),
    )


_STEPS: tuple[Callable[[_Host], Awaitable[DemoStep]], ...] = (
    _step_whoami,
    _step_notes,
    _step_revoke,
    _step_fail_closed,
    _step_server_refuses,
    _step_oauth_sign_in,
    _step_modes,
)


async def run_demo(stack: LocalStack, on_step: Callable[[int, DemoStep], None]) -> list[DemoStep]:
    """Create alice and bob on a running `stack`, run every step, report each through `on_step`."""
    users = [
        stack.create_user(TENANT, "alice", email="alice@example.com", name="Alice"),
        stack.create_user(TENANT, "bob", email="bob@example.com", name="Bob"),
        stack.create_user(TENANT, "carol", email="carol@example.com", name="Carol", grant=False),
    ]
    subjects = {user.user_id: user.sub for user in users}
    settings = EnterpriseTokenSettings(issuer_url=stack.issuer_url, inner_api_secret=stack.secret)
    steps: list[DemoStep] = []
    async with EnterpriseTokenClient(settings) as token_client:
        broker = TokenBroker(token_client)
        runtime = MCPToolRuntime(broker=broker)
        host = _Host(stack, token_client, broker, runtime, stack.provider(TENANT), subjects)
        for number, step_function in enumerate(_STEPS, start=1):
            try:
                step = await step_function(host)
            except Exception as exc:  # a step that blows up is a failed step, reported as such
                name = step_function.__name__.removeprefix("_step_").replace("_", " ")
                crash = DemoRow("-", "-", f"crashed: {type(exc).__name__}: {exc}", False)
                step = DemoStep(name, "the step runs to its end", (crash,))
            steps.append(step)
            on_step(number, step)
    return steps
