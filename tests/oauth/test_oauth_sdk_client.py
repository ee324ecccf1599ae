"""The mcp SDK's own OAuth client signs in at the issuer and calls our MCP server as that user."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from oauth_support import RunningIssuer, assert_oauth_error, claims_of

from fake_enterprise import AdminClient
from harness.oauth_login import auto_login_provider

pytestmark = pytest.mark.anyio


async def _whoami(server_url: str, provider: Any) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(auth=provider, timeout=10.0) as http,
        Client(streamable_http_client(server_url, http_client=http)) as client,
    ):
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_sdk_client_discovers_registers_signs_in_and_calls_as_the_user(
    module_issuer: RunningIssuer,
    mcp_server: str,
    admin: AdminClient,
    tenant: str,
    alice_subject: str,
    alice: str,
) -> None:
    provider, storage, browser = auto_login_provider(mcp_server, alice)

    seen = await _whoami(mcp_server, provider)

    assert seen["sub"] == alice_subject and seen["preferred_username"] == "alice"
    assert seen["tenant_id"] == tenant
    assert seen["email"] == f"alice@{tenant}.test"
    assert seen["iss"] == module_issuer.url
    assert seen["aud"] == mcp_server
    # The SDK found the issuer through the server's PRM, registered itself and used PKCE S256.
    assert storage.client_info is not None and storage.client_info.issuer == module_issuer.url
    [visited] = browser.visited
    assert visited.startswith(module_issuer.url + "/authorize?")
    assert "code_challenge_method=S256" in visited
    assert storage.tokens is not None and storage.tokens.refresh_token
    assert claims_of(storage.tokens.access_token)["client_id"] == storage.client_info.client_id
    # Signing in stored alice's SSO grant: the inner issue-token API now serves her.
    issued = admin.issue_token(tenant, "alice", mcp_server)
    assert claims_of(issued["token"])["sub"] == alice_subject


async def test_sdk_client_refreshes_with_rotation_and_the_old_refresh_token_then_kills_the_family(
    module_issuer: RunningIssuer, mcp_server: str, alice_subject: str, alice: str
) -> None:
    provider, storage, _ = auto_login_provider(mcp_server, alice)
    await _whoami(mcp_server, provider)
    assert storage.tokens is not None and storage.client_info is not None
    first = storage.tokens

    provider.context.token_expiry_time = 1.0  # long past: the access token has run out, as the client sees it
    seen = await _whoami(mcp_server, provider)

    second = storage.tokens
    assert seen["sub"] == alice_subject and seen["preferred_username"] == "alice"
    assert second.access_token != first.access_token
    assert second.refresh_token and second.refresh_token != first.refresh_token
    # The rotated-out refresh token comes back: refused, and the whole family with it.
    async with httpx.AsyncClient(timeout=10.0) as http:
        client_id = storage.client_info.client_id
        form = {"grant_type": "refresh_token", "client_id": client_id}
        token_url = f"{module_issuer.url}/token"
        reused = await http.post(token_url, data={**form, "refresh_token": first.refresh_token})
        assert_oauth_error(reused, "invalid_grant")
        current = await http.post(
            f"{module_issuer.url}/token", data={**form, "refresh_token": second.refresh_token}
        )
        assert_oauth_error(current, "invalid_grant")
