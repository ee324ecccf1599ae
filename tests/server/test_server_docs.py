"""The server snippets work as written: docs/server.md's "Use the verifier in your own MCP server"
and the README's "In an MCP server", each served and called as two users of two tenants."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from server_support import JWKSHost, Keys, mint
from starlette.applications import Starlette
from starlette.routing import Mount

from harness.servers import bind_loopback, serve_in_thread, socket_url

pytestmark = pytest.mark.anyio

REPO_DIR = Path(__file__).resolve().parents[2]
# (document, the text the snippet follows, whether it has a whoami tool)
SNIPPETS = [
    ("docs/server.md", "## Use the verifier in your own MCP server", True),
    ("README.md", "**In an MCP server**", False),
]


def _snippet(document: str, heading: str) -> str:
    usage = (REPO_DIR / document).read_text(encoding="utf-8").split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", usage, re.DOTALL)
    assert match, f"no python block after {heading!r} in {document}"
    return match.group(1)


def _pointed_at(snippet: str, issuer: str, resource: str) -> str:
    """The snippet with its two URLs replaced by the test's issuer and bound port."""
    lines = snippet.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("ISSUER = "):
            lines[index] = f"ISSUER = {issuer!r}"
        elif line.startswith("RESOURCE = "):
            lines[index] = f"RESOURCE = {resource!r}"
    rewritten = "\n".join(lines)
    assert repr(issuer) in rewritten and repr(resource) in rewritten
    return rewritten


def _closing_verifier(app: Starlette, verifier: Any) -> Starlette:
    """`app` as is, plus `verifier.aclose()` at shutdown, in the server's own event loop."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with app.router.lifespan_context(app):
            yield
        await verifier.aclose()

    return Starlette(routes=[Mount("/", app=app)], lifespan=lifespan)


def _alice(host: JWKSHost, keys: Keys, resource: str, **claims: Any) -> str:
    return mint(
        keys.rsa, issuer=host.url, audience=resource, claims={"preferred_username": "alice", **claims}
    )


async def _call(resource: str, token: str, tool: str, **arguments: Any) -> str:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(resource, http_client=http)) as client,
    ):
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(("document", "heading", "has_whoami"), SNIPPETS, ids=[doc for doc, *_ in SNIPPETS])
async def test_the_snippet_serves_the_verified_user(
    document: str, heading: str, has_whoami: bool, jwks_host: JWKSHost, keys: Keys
) -> None:
    sock = bind_loopback()
    resource = socket_url(sock) + "/mcp"
    namespace: dict[str, Any] = {"__name__": "docs_snippet"}
    snippet = _pointed_at(_snippet(document, heading), jwks_host.url, resource)
    exec(compile(snippet, document, "exec"), namespace)
    with serve_in_thread(_closing_verifier(namespace["app"], namespace["verifier"]), sock):
        async with httpx2.AsyncClient() as anonymous:
            refused = await anonymous.post(resource, json={})
        assert refused.status_code == 401

        acme_alice = _alice(jwks_host, keys, resource, sub="5f1c", tenant_id="acme")
        globex_alice = _alice(jwks_host, keys, resource, sub="9b2e", tenant_id="globex")
        if has_whoami:
            assert await _call(resource, acme_alice, "whoami") == "alice"
            assert await _call(resource, globex_alice, "whoami") == "alice"
        assert await _call(resource, acme_alice, "add_note", text="acme plans") == "acme plans"
        # Same readable name, another tenant and subject: another person, with notes of her own.
        assert await _call(resource, globex_alice, "add_note", text="globex plans") == "globex plans"
        assert await _call(resource, acme_alice, "add_note", text="more") == "acme plans\nmore"

        elsewhere = mint(keys.rsa, issuer=jwks_host.url, audience="http://127.0.0.1:1/mcp")
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {elsewhere}"}) as http:
            wrong_audience = await http.post(resource, json={})
        assert wrong_audience.status_code == 401
