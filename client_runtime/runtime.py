"""`MCPToolRuntime`: call a provider's MCP tools as a given end user, failing closed."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, Tool
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from client_runtime.auth import ForwardedIdentityAuth
from client_runtime.broker import TokenBroker, TokenKey
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

__all__ = ["MCPToolRuntime"]

# A server that hands out cursors forever must not keep a listing running forever.
_MAX_TOOL_PAGES = 100


@dataclass(frozen=True)
class _Identity:
    """Who one session speaks as: its auth (None in `off` mode) and, for issued tokens, how to evict."""

    auth: ForwardedIdentityAuth | None
    header: str | None = None
    key: TokenKey | None = None
    token: IssuedToken | None = None


class MCPToolRuntime:
    """Runs MCP tool calls for end users over streamable HTTP.

    Per call, in this order: forwarding on and no user → `MCPMissingUserError` before any
    I/O; obtain the identity (issuer token via `broker`, or the user's stored credential);
    open a fresh MCP session that carries it on every request; call; close. Sessions and
    connections are never pooled, so no user's identity can leak into another user's call.
    A 401/403 from the server while forwarding evicts the token and raises
    `MCPIdentityForwardingError`; there is no retry with static auth or another identity.

    Each session gets its own `httpx2.AsyncClient` (from `http_client_factory`), sharing only
    `ssl_context`. `protocol_mode` is the mcp SDK's connect mode: "auto" (probe the 2026
    protocol, fall back to the initialize handshake), "legacy" (handshake only) or a pinned
    modern version.
    """

    def __init__(
        self,
        *,
        broker: TokenBroker | None = None,
        credentials: EndUserCredentialStore | None = None,
        timeout: float = 30.0,
        protocol_mode: str = "auto",
        client_info: Implementation | None = None,
        ssl_context: ssl.SSLContext | None = None,
        http_client_factory: Callable[..., httpx2.AsyncClient] = httpx2.AsyncClient,
    ) -> None:
        self._broker = broker
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
        # session's fresh client. It holds trust settings only, never a connection or an identity.
        self._ssl_context = ssl_context if ssl_context is not None else httpx2.create_ssl_context()

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
        watch = _RejectionWatch()
        try:
            result = await self._session_call(provider, identity, watch, action)
        except Exception as exc:
            if watch.status is None:
                answered = f" (HTTP {watch.error_status})" if watch.error_status is not None else ""
                raise MCPToolInvocationError(
                    f"MCP call to provider {provider.provider_id!r} failed{answered}: {_describe(exc)}",
                    status_code=watch.error_status,
                ) from exc
            self._reject(provider, identity, watch.status)
        if watch.status is not None:
            # A rejection anywhere in the session (say, on the GET stream) still means the
            # server does not accept this identity.
            self._reject(provider, identity, watch.status)
        return result

    def _reject(self, provider: MCPProvider, identity: _Identity, status: int) -> NoReturn:
        if identity.auth is None:
            raise MCPToolInvocationError(
                f"the MCP server of provider {provider.provider_id!r} refused the call (HTTP {status});"
                " it requires an identity this provider does not send"
            )
        if self._broker is not None and identity.key is not None:
            self._broker.invalidate(identity.key, identity.token)
        raise MCPIdentityForwardingError(
            f"the MCP server rejected the forwarded identity (HTTP {status})", status_code=status
        )

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
        if mode is IdentityMode.IDP_TOKEN:
            if self._broker is None:
                raise MCPIssuerConfigError("idp_token mode needs a TokenBroker, and this runtime has none")
            key = TokenKey(tenant_id, user_id, user_type, provider.server_url)
            token = await self._broker.get(
                tenant_id=tenant_id, user_id=user_id, audience=provider.server_url, user_type=user_type
            )
            auth = ForwardedIdentityAuth(token.token, header=provider.token_header)
            return _Identity(auth=auth, header=provider.token_header, key=key, token=token)
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
            return _Identity(auth=ForwardedIdentityAuth(credential.secret, header=header), header=header)
        raise MCPProviderConfigError(f"identity mode {mode.value!r} is not supported by this runtime")

    async def _session_call(
        self,
        provider: MCPProvider,
        identity: _Identity,
        watch: _RejectionWatch,
        action: Callable[[Client], Any],
    ) -> Any:
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
            event_hooks={"response": [watch]},
        )
        client = Client(
            streamable_http_client(provider.server_url, http_client=http_client),
            read_timeout_seconds=self._timeout,
            mode=self._protocol_mode,  # type: ignore[arg-type]
            client_info=self._client_info,
            cache=None,  # a response cache is per identity at best; a session is used once anyway
        )
        async with http_client, client:
            return await action(client)


class _RejectionWatch:
    """An httpx2 response hook remembering the first 401/403 the MCP server answered in a session,
    and the first other error status (a 503 while the server cannot fetch its keys, say), which the
    SDK's exception does not carry."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.error_status: int | None = None

    async def __call__(self, response: httpx2.Response) -> None:
        code = response.status_code
        if code in (401, 403):
            if self.status is None:
                self.status = code
        elif code >= 400 and self.error_status is None:
            self.error_status = code


def _describe(exc: BaseException) -> str:
    """A one-line account of a failure, looking through exception groups to the first leaf."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
