"""Fixtures for the client tests: one real issuer and MCP server per session, and a fresh host per test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from client_support import (
    Host,
    RequestLog,
    Stack,
    counting_http_client,
    serve_issuer,
    serve_mcp_server,
    serve_recorder,
)

import fake_enterprise
from client_runtime import EnterpriseTokenClient, EnterpriseTokenSettings, MCPToolRuntime, TokenBroker


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    secret, admin_secret = secrets.token_hex(16), secrets.token_hex(16)
    issuer, issuer_log = serve_issuer(secret, admin_secret)
    server, server_log, server_url = serve_mcp_server(issuer.url)
    admin = fake_enterprise.AdminClient(issuer.url, admin_secret, inner_secret=secret)
    try:
        yield Stack(issuer.url, secret, server_url, admin, issuer_log, server_log)
    finally:
        admin.close()
        server.stop()
        issuer.stop()


@pytest.fixture
async def host(stack: Stack, anyio_backend: str) -> AsyncIterator[Host]:
    issued_for: list[str] = []
    settings = EnterpriseTokenSettings(
        issuer_url=stack.issuer_url, inner_api_secret=stack.secret, backoff=0.0
    )
    async with (
        counting_http_client(issued_for) as http,
        EnterpriseTokenClient(settings, http_client=http) as client,
    ):
        broker = TokenBroker(client)
        # Open, so its calls reuse sessions: the default a host gets with `async with`.
        async with MCPToolRuntime(broker=broker) as runtime:
            yield Host(runtime, broker, client, issued_for, stack.user_of)


@pytest.fixture
def other_host() -> Iterator[tuple[str, RequestLog]]:
    """A real loopback server standing for a host a secret must never reach: its URL and request log."""
    served, log = serve_recorder()
    try:
        yield served.url, log
    finally:
        served.stop()
