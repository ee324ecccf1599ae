"""An MCP server that stops answering mid-call: the runtime gives up at its timeout with a mapped error."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from load_support import bounded
from mcp.server.mcpserver import MCPServer

from client_runtime import MCPProvider, MCPToolInvocationError, MCPToolRuntime
from harness.servers import bind_loopback, serve_in_thread, socket_url

RUNTIME_TIMEOUT = 1.0
SLACK = 5.0


@pytest.fixture(scope="module")
def stalling_server_url() -> Iterator[str]:
    """An MCP server whose `stall` tool never answers (within the test) and whose `echo` does."""
    server = MCPServer("stalling")

    @server.tool()
    async def stall() -> str:
        await anyio.sleep(3600)
        return "too late"

    @server.tool()
    def echo(text: str) -> str:
        return text

    sock = bind_loopback()
    url = socket_url(sock) + "/mcp"
    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    with serve_in_thread(app, sock):
        yield url


@pytest.mark.anyio
async def test_a_stalled_tool_call_fails_with_a_mapped_error_at_the_runtime_timeout(
    stalling_server_url: str,
) -> None:
    runtime = MCPToolRuntime(timeout=RUNTIME_TIMEOUT)
    provider = MCPProvider(provider_id="stalling", tenant_id="acme", server_url=stalling_server_url)

    async def stalled() -> None:
        with pytest.raises(MCPToolInvocationError):
            await bounded(
                RUNTIME_TIMEOUT + SLACK,
                lambda: runtime.invoke(provider, "stall", tenant_id="acme", user_id=None),
            )

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(stalled)

    # The server itself is fine: a call that does answer still does.
    result = await runtime.invoke(provider, "echo", {"text": "still here"}, tenant_id="acme", user_id=None)
    assert not result.is_error
