"""Helpers for the forwarding-mode tests: calling whoami, and a transport that fails chosen requests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
from mcp.types import CallToolResult, TextContent

from client_runtime import MCPProvider, MCPToolRuntime
from harness.stack import LocalStack, StackUser


def seen(result: CallToolResult) -> dict[str, Any]:
    """The identity whoami reports (structured content, or its one JSON text block)."""
    assert not result.is_error, result
    if result.structured_content is not None:
        return dict(result.structured_content)
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    return json.loads(texts[0])


async def whoami(runtime: MCPToolRuntime, provider: MCPProvider, user: StackUser) -> dict[str, Any]:
    result = await runtime.invoke(provider, "whoami", {}, tenant_id=user.tenant_id, user_id=user.user_id)
    return seen(result)


def exchanges_of(stack: LocalStack, user: StackUser, requested: str) -> int:
    """How many token exchanges for `requested` (`access_token`, `id-jag`) the IdP answered 200 for `user`."""
    return sum(
        1
        for call in stack.calls.calls
        if call.server == "idp"
        and call.grant_type == "token-exchange"
        and call.status == 200
        and call.requested_token_type == requested
        and call.subject == f"{user.tenant_id}/{user.user_id}"
    )


class FailingTransport(httpx2.AsyncBaseTransport):
    """A real transport, except that the requests `fails` picks get `status` without being sent."""

    def __init__(self, fails: Callable[[httpx2.Request], bool], status: int = 503) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.fails = fails
        self._status = status
        self.failed = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.fails(request):
            self.failed += 1
            return httpx2.Response(self._status, json={"error": "temporarily_unavailable"}, request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
