"""`MCPToolRuntime`: call a provider's MCP tools as a given end user, failing closed."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NoReturn, Self

import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, Tool
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from client_runtime.auth import ForwardedIdentityAuth
from client_runtime.broker import TokenBroker, TokenKey
from client_runtime.challenge import parse_bearer_challenge
from client_runtime.credentials import CredentialType, EndUserCredentialStore
from client_runtime.errors import (
    MCPIdentityForwardingError,
    MCPIssuerConfigError,
    MCPMissingUserError,
    MCPProviderConfigError,
    MCPToolInvocationError,
)
from client_runtime.issuer_client import USER_TYPES, IssuedToken
from client_runtime.modes import IdentityMode
from client_runtime.providers import AUTHORIZATION, MCPProvider
from client_runtime.session_pool import SessionKey, SessionPool, SessionPoolSettings

__all__ = ["MCPToolRuntime"]

# A server that hands out cursors forever must not keep a listing running forever.
_MAX_TOOL_PAGES = 100


@dataclass(frozen=True)
class _Identity:
    """Who one session speaks as: its auth (None in `off` mode), the secret it carries (which a
    pooled session must match) and, for issued tokens, how to evict."""

    auth: ForwardedIdentityAuth | None
    header: str | None = None
    key: TokenKey | None = None
    token: IssuedToken | None = None
    secret: str | None = field(default=None, repr=False)
    broker: TokenBroker | None = field(default=None, repr=False)


# The constructor argument that gives each token mode its broker, as errors name it.
_BROKER_ARGUMENTS = {
    IdentityMode.IDP_TOKEN: "broker",
    IdentityMode.TOKEN_EXCHANGE: "token_exchange_broker",
    IdentityMode.ID_JAG: "id_jag_broker",
}


class MCPToolRuntime:
    """Runs MCP tool calls for end users over streamable HTTP.

    Per call, in this order: forwarding on and no user → `MCPMissingUserError` before any
    I/O; obtain the identity (a token from the mode's broker: `broker` for `idp_token`,
    `token_exchange_broker` over a `TokenExchangeSource`, `id_jag_broker` over an
    `IdJagSource`; or the user's stored credential);
    get an MCP session that carries it on every request; call. A 401/403 from the server
    while forwarding evicts the token and raises `MCPIdentityForwardingError` with the
    server's RFC 6750 reason; there is no retry with static auth or another identity.

    Sessions: while the runtime is open (`async with MCPToolRuntime(...) as runtime`), a
    session is kept per (provider, tenant, user, identity mode) and reused by that user's
    later calls, so a warm call is one HTTP request. It is closed when the user's token
    changes (rotation) or is refused, after `session_pool.idle_timeout` unused, when the
    `max_sessions` bound pushes it out (least recently used first), and by `aclose()`. A
    session whose server forgot it (404 after a restart) is reopened once, with the same
    identity. A provider with `session_reuse=False`, and every call of a runtime that is not
    open, gets a fresh session that is closed when the call ends. Sessions never share an
    HTTP client or a connection, so no user's identity can leak into another user's call.

    Each session gets its own `httpx2.AsyncClient` (from `http_client_factory`), sharing only
    `ssl_context`. `protocol_mode` is the mcp SDK's connect mode: "auto" (probe the 2026
    protocol, fall back to the initialize handshake), "legacy" (handshake only) or a pinned
    modern version. `clock` (seconds, monotonic) times idle sessions.
    """

    def __init__(
        self,
        *,
        broker: TokenBroker | None = None,
        credentials: EndUserCredentialStore | None = None,
        token_exchange_broker: TokenBroker | None = None,
        id_jag_broker: TokenBroker | None = None,
        timeout: float = 30.0,
        protocol_mode: str = "auto",
        client_info: Implementation | None = None,
        ssl_context: ssl.SSLContext | None = None,
        http_client_factory: Callable[..., httpx2.AsyncClient] = httpx2.AsyncClient,
        session_pool: SessionPoolSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._brokers: dict[IdentityMode, TokenBroker | None] = {
            IdentityMode.IDP_TOKEN: broker,
            IdentityMode.TOKEN_EXCHANGE: token_exchange_broker,
            IdentityMode.ID_JAG: id_jag_broker,
        }
        self._credentials = credentials
        if protocol_mode not in ("auto", "legacy", *MODERN_PROTOCOL_VERSIONS):
            raise ValueError(
                f"protocol_mode must be 'auto', 'legacy' or one of {list(MODERN_PROTOCOL_VERSIONS)}"
            )
        self._timeout = timeout
        self._protocol_mode = protocol_mode
        self._client_info = client_info or Implementation(name="mcp-idfwd-client-runtime", version="0.1.0")
        self._http_client_factory = http_client_factory
        # Building a TLS context costs tens of milliseconds; one per runtime is shared by every
        # session's own client. It holds trust settings only, never a connection or an identity.
        self._ssl_context = ssl_context if ssl_context is not None else httpx2.create_ssl_context()
        self._pool = SessionPool(session_pool, clock=clock)

    async def __aenter__(self) -> Self:
        await self._pool.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._pool.stop()

    async def aclose(self) -> None:
        """Close every pooled session (after the calls using them end); later calls open new ones."""
        await self._pool.close_all()

    @property
    def open_sessions(self) -> int:
        """How many sessions the pool holds for reuse now."""
        return len(self._pool)

    async def invoke(
        self,
        provider: MCPProvider,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        tenant_id: str,
        user_id: str | None,
        user_type: str = "account",
        credential_id: str | None = None,
    ) -> CallToolResult:
        """Call `tool` on `provider` as `user_id`; the result as the server returned it.

        Tool-level failures come back as a result with `is_error`; identity failures raise
        `MCPTokenError` subclasses; an unreachable or misbehaving server raises `MCPToolInvocationError`.
        """
        args = dict(arguments) if arguments is not None else None

        async def call(client: Client) -> CallToolResult:
            return await client.call_tool(tool, args)

        return await self._run(provider, call, tenant_id, user_id, user_type, credential_id)

    async def list_tools(
        self,
        provider: MCPProvider,
        *,
        tenant_id: str,
        user_id: str | None,
        user_type: str = "account",
        credential_id: str | None = None,
    ) -> list[Tool]:
        """Every tool `provider` offers to `user_id` (all pages)."""

        async def listing(client: Client) -> list[Tool]:
            tools: list[Tool] = []
            cursor: str | None = None
            for _ in range(_MAX_TOOL_PAGES):
                page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return tools
            raise MCPToolInvocationError(
                f"the server's tool listing did not end within {_MAX_TOOL_PAGES} pages"
            )

        return await self._run(provider, listing, tenant_id, user_id, user_type, credential_id)

    async def _run(
        self,
        provider: MCPProvider,
        action: Callable[[Client], Any],
        tenant_id: str,
        user_id: str | None,
        user_type: str,
        credential_id: str | None,
    ) -> Any:
        if tenant_id != provider.tenant_id:
            raise MCPProviderConfigError("the provider belongs to another tenant than the call")
        if user_type not in USER_TYPES:
            raise MCPProviderConfigError(f"user_type must be one of {USER_TYPES}")
        mode = provider.effective_mode
        if mode.forwards_identity and not user_id:
            raise MCPMissingUserError(
                f"provider {provider.provider_id!r} forwards identity ({mode.value}) but the call has no user"
            )
        identity = await self._identity(provider, mode, tenant_id, user_id or "", user_type, credential_id)
        if not (provider.session_reuse and self._pool.running):
            return await self._attempt(provider, identity, action, None)
        key = SessionKey(
            tenant_id=tenant_id,
            provider_id=provider.provider_id,
            server_url=provider.server_url,
            user_id=user_id or "",
            user_type=user_type,
            identity_mode=mode.value,
            credential_id=credential_id,
            provider_headers=SessionKey.headers_of(provider.token_header, provider.static_headers),
        )
        try:
            return await self._attempt(provider, identity, action, key)
        except _SessionGone:
            # The server no longer knows the session (it restarted): it did not run the call,
            # so the call goes once more, on a new session with the same identity.
            return await self._attempt(provider, identity, action, key, reopened=True)

    async def _attempt(
        self,
        provider: MCPProvider,
        identity: _Identity,
        action: Callable[[Client], Any],
        key: SessionKey | None,
        *,
        reopened: bool = False,
    ) -> Any:
        """One try of the call: on the pooled session for `key`, or on a fresh session if None."""
        watch = _RejectionWatch()
        watching = _current_watch.set(watch)
        reused = False
        cancellations_before = _cancellations()
        try:
            if key is None:
                async with self._connect(provider, identity) as client:
                    result = await action(client)
            else:
                connect = lambda: self._connect(provider, identity)  # noqa: E731
                async with self._pool.lease(key, identity.secret, connect) as lease:
                    reused = lease.reused
                    result = await action(lease.client)
                    if watch.status is not None:
                        lease.discard()
        except Exception as exc:
            if _cancellations() > cancellations_before:
                # Cancelled mid-call (Ctrl-C, a caller's timeout): the SDK's torn-down streams
                # raise their own errors meanwhile. The cancellation goes on; it is no failed call.
                # A cancel scope (anyio's move_on_after, fail_after) first gets the chance to
                # deliver its own cancellation, which it recognises and absorbs.
                await asyncio.sleep(0)
                raise asyncio.CancelledError from exc
            if watch.status is None:
                if reused and not reopened and watch.error_status == 404:
                    raise _SessionGone from exc
                answered = f" (HTTP {watch.error_status})" if watch.error_status is not None else ""
                raise MCPToolInvocationError(
                    f"MCP call to provider {provider.provider_id!r} failed{answered}: {_describe(exc)}",
                    status_code=watch.error_status,
                ) from exc
            self._reject(provider, identity, watch)
        finally:
            _current_watch.reset(watching)
        if watch.status is not None:
            # A rejection anywhere in the call (say, on the GET stream) still means the
            # server does not accept this identity.
            self._reject(provider, identity, watch)
        return result

    def _reject(self, provider: MCPProvider, identity: _Identity, watch: _RejectionWatch) -> NoReturn:
        status = watch.status
        if identity.auth is None:
            raise MCPToolInvocationError(
                f"the MCP server of provider {provider.provider_id!r} refused the call (HTTP {status});"
                " it requires an identity this provider does not send"
            )
        if identity.broker is not None and identity.key is not None:
            identity.broker.invalidate(identity.key, identity.token)
        error = MCPIdentityForwardingError(
            f"the MCP server refused the forwarded identity (HTTP {status})",
            status_code=status,
            error=watch.error,
            error_description=watch.error_description,
        )
        if error.reason is not None:
            error.args = (f"{error.args[0]}: {error.reason}",)
        raise error

    async def _identity(
        self,
        provider: MCPProvider,
        mode: IdentityMode,
        tenant_id: str,
        user_id: str,
        user_type: str,
        credential_id: str | None,
    ) -> _Identity:
        if mode is IdentityMode.OFF:
            return _Identity(auth=None)
        if mode in self._brokers:
            broker = self._brokers[mode]
            if broker is None:
                raise MCPIssuerConfigError(
                    f"{mode.value} mode needs a TokenBroker ({_BROKER_ARGUMENTS[mode]}=),"
                    " and this runtime has none"
                )
            key = TokenKey(tenant_id, user_id, user_type, provider.server_url)
            token = await broker.get(
                tenant_id=tenant_id, user_id=user_id, audience=provider.server_url, user_type=user_type
            )
            auth = ForwardedIdentityAuth(token.token, header=provider.token_header)
            return _Identity(
                auth=auth,
                header=provider.token_header,
                key=key,
                token=token,
                secret=token.token,
                broker=broker,
            )
        if mode is IdentityMode.END_USER_CREDENTIAL:
            if self._credentials is None:
                raise MCPIssuerConfigError("end_user_credential mode needs an EndUserCredentialStore")
            credential = self._credentials.usable(
                tenant_id,
                user_id,
                provider.provider_id,
                server_url=provider.server_url,
                credential_id=credential_id,
            )
            header = (
                provider.token_header
                if credential.credential_type is CredentialType.API_KEY
                else AUTHORIZATION
            )
            auth = ForwardedIdentityAuth(credential.secret, header=header)
            return _Identity(auth=auth, header=header, secret=credential.secret)
        raise MCPProviderConfigError(f"identity mode {mode.value!r} is not supported by this runtime")

    @asynccontextmanager
    async def _connect(self, provider: MCPProvider, identity: _Identity) -> AsyncIterator[Client]:
        """An open MCP session carrying `identity` on every request, over an HTTP client of its own."""
        # The identity header replaces a static header of the same name, so static auth never rides along.
        headers = {
            name: value
            for name, value in provider.static_headers.items()
            if identity.header is None or name.lower() != identity.header.lower()
        }
        http_client = self._http_client_factory(
            headers=headers,
            auth=identity.auth,
            timeout=httpx2.Timeout(self._timeout),
            follow_redirects=False,
            verify=self._ssl_context,
            event_hooks={"response": [_watch_response]},
        )
        client = Client(
            streamable_http_client(provider.server_url, http_client=http_client),
            read_timeout_seconds=self._timeout,
            mode=self._protocol_mode,  # type: ignore[arg-type]
            client_info=self._client_info,
            cache=None,  # no response cache: one more place a user's answers could outlive the session
        )
        async with http_client, client:
            yield client


class _SessionGone(Exception):
    """A reused session was answered 404: the server forgot it (restarted) before running the call."""


class _RejectionWatch:
    """What the MCP server answered one call: the first 401/403 (with its RFC 6750 challenge) and
    the first other error status (a 503 while the server cannot fetch its keys, say), which the
    SDK's exception does not carry."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.error_status: int | None = None
        self.error: str | None = None
        self.error_description: str | None = None

    def record(self, response: httpx2.Response) -> None:
        code = response.status_code
        if code in (401, 403):
            if self.status is None:
                self.status = code
                challenge = parse_bearer_challenge(response.headers.get_list("www-authenticate"))
                if challenge is not None:
                    self.error, self.error_description = challenge.error, challenge.error_description
        elif code >= 400 and self.error_status is None:
            self.error_status = code


# The watch of the call in progress. The SDK sends each request from a copy of its sender's
# context, so concurrent calls on one pooled session each see only their own answers; requests
# the session makes by itself (its opening, the GET stream) go to the watch of the call that opened it.
_current_watch: ContextVar[_RejectionWatch | None] = ContextVar("mcp_idfwd_call_watch", default=None)


async def _watch_response(response: httpx2.Response) -> None:
    watch = _current_watch.get()
    if watch is not None:
        watch.record(response)


def _cancellations() -> int:
    """How many cancellation requests the running asyncio task has had and not withdrawn.

    Compared before and after a call: a task that once swallowed a cancellation keeps a count
    above zero, and a real failure of its later calls must still be reported as one.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no asyncio loop running (another backend): nothing to tell
        return 0
    return 0 if task is None else task.cancelling()


def _describe(exc: BaseException) -> str:
    """A one-line account of a failure, looking through exception groups to the first leaf."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
