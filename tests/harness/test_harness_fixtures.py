"""Uses every fixture of the installed `idfwd` pytest plugin, importing nothing from the project."""

import httpx
import pytest


def test_idfwd_issuer_is_running_with_an_admin_client(idfwd_issuer) -> None:
    discovery = httpx.get(f"{idfwd_issuer.url}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == idfwd_issuer.url
    assert idfwd_issuer.admin.jwks()["keys"]
    assert idfwd_issuer.secret not in repr(idfwd_issuer)
    assert idfwd_issuer.admin_secret not in repr(idfwd_issuer)


def test_idfwd_issuer_has_two_secrets_with_two_jobs(idfwd_issuer) -> None:
    assert idfwd_issuer.admin_secret != idfwd_issuer.secret
    minted = httpx.post(
        f"{idfwd_issuer.url}/admin/mint",
        json={"claims": {"sub": "x"}},
        headers={"Authorization": f"Bearer {idfwd_issuer.admin_secret}"},
    )
    assert minted.status_code == 200
    with_the_inner_secret = httpx.post(
        f"{idfwd_issuer.url}/admin/mint",
        json={"claims": {"sub": "x"}},
        headers={"Enterprise-Api-Secret-Key": idfwd_issuer.secret},
    )
    assert with_the_inner_secret.status_code == 401


def test_idfwd_mcp_server_trusts_the_issuer(idfwd_issuer, idfwd_mcp_server) -> None:
    assert idfwd_mcp_server.issuer_url == idfwd_issuer.url
    assert idfwd_mcp_server.url.endswith("/mcp")
    refused = httpx.post(idfwd_mcp_server.url, json={}, headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_idfwd_stack_issues_tokens_the_server_accepts(idfwd_stack, idfwd_issuer, idfwd_mcp_server) -> None:
    assert (idfwd_stack.issuer_url, idfwd_stack.server_url) == (idfwd_issuer.url, idfwd_mcp_server.url)
    user = idfwd_stack.new_user("acme", prefix="fixture")
    issued = idfwd_stack.admin.issue_token("acme", user.user_id, idfwd_stack.server_url)
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "fixture-test", "version": "1"},
        },
    }
    headers = {"Authorization": f"Bearer {issued['token']}", "Accept": "application/json, text/event-stream"}
    with httpx.stream("POST", idfwd_stack.server_url, json=initialize, headers=headers) as response:
        assert response.status_code == 200


@pytest.mark.anyio
async def test_idfwd_runtime_calls_tools_as_each_user(idfwd_runtime, idfwd_stack, idfwd_user) -> None:
    provider = idfwd_stack.provider("acme")
    other = idfwd_stack.new_user("acme", prefix="other")
    mine = await idfwd_runtime.invoke(provider, "whoami", {}, tenant_id="acme", user_id=idfwd_user.user_id)
    theirs = await idfwd_runtime.invoke(provider, "whoami", {}, tenant_id="acme", user_id=other.user_id)
    assert mine.structured_content["sub"] == idfwd_user.sub
    assert theirs.structured_content["sub"] == other.sub != idfwd_user.sub
    assert mine.structured_content["aud"] == idfwd_stack.server_url


@pytest.mark.anyio
async def test_idfwd_runtime_fails_closed_after_revocation(idfwd_runtime, idfwd_stack, idfwd_user) -> None:
    idfwd_stack.admin.revoke(idfwd_user.tenant_id, idfwd_user.user_id)
    provider = idfwd_stack.provider("acme")
    with pytest.raises(Exception) as raised:
        await idfwd_runtime.invoke(provider, "whoami", {}, tenant_id="acme", user_id=idfwd_user.user_id)
    assert type(raised.value).__name__ == "MCPIdentityRefreshError"
