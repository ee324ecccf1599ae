"""The reference server acts as the verified user: whoami, per-user notes, and session-to-user binding."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types.version import LATEST_HANDSHAKE_VERSION
from server_support import Keys, RunningServer, mint

from harness.conformance import initialize_request

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def connect(server: RunningServer, token: str) -> AsyncIterator[Client]:
    """An MCP client whose every HTTP request carries `token`."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(server.resource_url, http_client=http)) as client,
    ):
        yield client


def _token(server: RunningServer, keys: Keys, **claims: Any) -> str:
    return mint(keys.rsa, issuer=server.issuer, audience=server.resource_url, claims=claims)


async def _structured(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_whoami_returns_the_verified_user(server: RunningServer, keys: Keys) -> None:
    token = _token(
        server,
        keys,
        sub="5f1c",
        preferred_username="alice",
        email="alice@example.test",
        name="Alice",
        tenant_id="t1",
    )
    async with connect(server, token) as client:
        identity = await _structured(client, "whoami")
    claims = (await server.app.state.verifier.verify(token)).claims
    assert identity == {
        "sub": "5f1c",
        "preferred_username": "alice",
        "email": "alice@example.test",
        "name": "Alice",
        "tenant_id": "t1",
        "iss": server.issuer,
        "aud": server.resource_url,
        "exp": claims["exp"],
    }


async def test_echo(server: RunningServer, keys: Keys) -> None:
    async with connect(server, _token(server, keys)) as client:
        result = await client.call_tool("echo", {"text": "hello"})
    assert not result.is_error
    assert result.content[0].text == "hello"  # type: ignore[union-attr]


async def test_users_never_see_each_others_notes(server: RunningServer, keys: Keys) -> None:
    alice = _token(server, keys, sub="5f1c", preferred_username="alice", tenant_id="t1")
    bob = _token(server, keys, sub="77d0", preferred_username="bob", tenant_id="t1")
    # Same readable user id in another tenant: another person, with another subject.
    alice_elsewhere = _token(server, keys, sub="9b2e", preferred_username="alice", tenant_id="t2")
    async with connect(server, alice) as client:
        await _structured(client, "add_note", text="alice's secret")
    async with connect(server, bob) as client:
        assert await _structured(client, "add_note", text="bob's plan") == {"notes": ["bob's plan"]}
        assert await _structured(client, "list_notes") == {"notes": ["bob's plan"]}
    async with connect(server, alice_elsewhere) as client:
        assert await _structured(client, "list_notes") == {"notes": []}
    async with connect(server, _token(server, keys, sub="5f1c", tenant_id="t1")) as client:
        assert await _structured(client, "list_notes") == {"notes": ["alice's secret"]}


async def test_notes_follow_the_subject_not_the_labels(server: RunningServer, keys: Keys) -> None:
    """(iss, sub) is the person: the same subject under other labels still reaches its notes."""
    async with connect(server, _token(server, keys, sub="5f1c", tenant_id="t1")) as client:
        await _structured(client, "add_note", text="mine")
    relabelled = _token(server, keys, sub="5f1c", tenant_id="t1-renamed", preferred_username="al")
    async with connect(server, relabelled) as client:
        assert await _structured(client, "list_notes") == {"notes": ["mine"]}


async def test_bad_note_is_a_tool_error_not_a_crash(server: RunningServer, keys: Keys) -> None:
    async with connect(server, _token(server, keys)) as client:
        result = await client.call_tool("add_note", {"text": "x" * 2001})
    assert result.is_error


def _rpc(
    server: RunningServer, token: str, body: dict[str, Any], session_id: str | None = None
) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": LATEST_HANDSHAKE_VERSION,
    }
    if session_id:
        headers["Mcp-Session-Id"] = session_id
    return httpx.post(server.resource_url, headers=headers, json=body, timeout=10)


def test_a_session_belongs_to_the_user_who_opened_it(server: RunningServer, keys: Keys) -> None:
    alice = _token(server, keys, sub="alice")
    opened = _rpc(
        server,
        alice,
        initialize_request("server-tools-test"),
    )
    assert opened.status_code == 200
    session_id = opened.headers["mcp-session-id"]
    assert (
        _rpc(server, alice, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session_id).status_code
        == 202
    )
    whoami = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}},
    }

    # Another valid token for someone else cannot ride on Alice's session, not even one for a
    # same-named user of another tenant.
    assert _rpc(server, _token(server, keys, sub="mallory"), whoami, session_id).status_code == 404
    namesake = _token(server, keys, sub="9b2e", preferred_username="alice", tenant_id="globex")
    assert _rpc(server, namesake, whoami, session_id).status_code == 404
    # A fresh token for Alice herself (tokens are short-lived and get replaced) can.
    reply = _rpc(server, _token(server, keys, sub="alice"), whoami, session_id)
    assert reply.status_code == 200
    assert _message(reply)["result"]["structuredContent"]["sub"] == "alice"


def _message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message in a reply, whether sent as JSON or as one SSE event."""
    if response.headers["content-type"].startswith("application/json"):
        return response.json()
    data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])
