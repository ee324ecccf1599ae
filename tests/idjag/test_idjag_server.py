"""Our server's own authorization server: metadata, tokens for ID-JAGs, the MCP endpoint accepting them."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import httpx2
import jwt
import pytest
from idjag_support import HOST_APP, JWT_BEARER, IdJagMinter, RunningAS, redeem, running_as, running_idp
from mcp.client import Client
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.types.version import LATEST_HANDSHAKE_VERSION

from harness.conformance.exchange import initialize_request
from harness.oauth_login import MemoryTokenStorage
from harness.pytest_plugin import IssuerHandle

pytestmark = pytest.mark.anyio

ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"


async def _whoami(resource_url: str, **client_options: Any) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(follow_redirects=False, timeout=httpx2.Timeout(10), **client_options) as http,
        Client(streamable_http_client(resource_url, http_client=http), read_timeout_seconds=10) as client,
    ):
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    assert result.structured_content is not None
    return result.structured_content


def test_metadata_names_the_jwt_bearer_grant_and_the_id_jag_profile(as_server: RunningAS) -> None:
    metadata = httpx.get(as_server.issuer + "/.well-known/oauth-authorization-server", timeout=10).json()

    assert metadata["issuer"] == as_server.issuer == as_server.served.url
    assert metadata["token_endpoint"] == as_server.token_url
    assert metadata["grant_types_supported"] == [JWT_BEARER]
    assert metadata["authorization_grant_profiles_supported"] == [ID_JAG_PROFILE]
    assert metadata["jwks_uri"] == as_server.issuer + "/.well-known/jwks.json"
    assert metadata["registration_endpoint"] == as_server.issuer + "/register"
    keys = httpx.get(metadata["jwks_uri"], timeout=10).json()["keys"]
    assert [key["alg"] for key in keys] == ["ES256"]
    assert all("d" not in key for key in keys)


def test_protected_resource_metadata_names_this_authorization_server(as_server: RunningAS) -> None:
    path = "/.well-known/oauth-protected-resource/mcp"
    metadata = httpx.get(as_server.served.url + path, timeout=10).json()

    assert metadata["resource"] == as_server.resource_url
    assert metadata["authorization_servers"] == [as_server.issuer]


def test_an_id_jag_buys_an_access_token_for_this_resource(as_server: RunningAS, mint: IdJagMinter) -> None:
    response = redeem(as_server, mint())

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 300
    assert body["scope"] == "notes.read notes.write"
    assert "refresh_token" not in body
    header = jwt.get_unverified_header(body["access_token"])
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert claims["iss"] == as_server.issuer
    assert claims["aud"] == as_server.resource_url
    assert claims["client_id"] == HOST_APP.client_id
    assert claims["sub"] == "sub-alice-acme"
    assert claims["tenant_id"] == "acme"
    assert claims["preferred_username"] == "alice"
    assert claims["email"] == "alice@acme.test"
    assert claims["scope"] == "notes.read notes.write"
    assert claims["exp"] - claims["iat"] == 300


def test_asking_for_fewer_scopes_narrows_the_token(as_server: RunningAS, mint: IdJagMinter) -> None:
    response = redeem(as_server, mint(), scope="notes.read")

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "notes.read"


async def test_the_mcp_endpoint_accepts_its_own_access_token(as_server: RunningAS, mint: IdJagMinter) -> None:
    token = redeem(as_server, mint()).json()["access_token"]

    identity = await _whoami(as_server.resource_url, headers={"Authorization": f"Bearer {token}"})

    assert identity["sub"] == "sub-alice-acme"
    assert identity["iss"] == as_server.issuer
    assert identity["tenant_id"] == "acme"


def test_the_mcp_endpoint_refuses_the_idps_own_tokens(as_server: RunningAS, mint: IdJagMinter) -> None:
    # An ID-JAG (or any IdP token) is a grant for the authorization server, not an access token.
    response = httpx.post(
        as_server.resource_url,
        headers={"Authorization": f"Bearer {mint()}", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        timeout=10,
    )

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_the_sdk_identity_assertion_client_calls_whoami_as_the_user(
    as_server: RunningAS, mint: IdJagMinter
) -> None:
    asked: list[tuple[str, str]] = []

    async def id_jag(audience: str, resource: str) -> str:
        asked.append((audience, resource))
        return await anyio.to_thread.run_sync(mint.for_user, "bob", "globex")

    storage = MemoryTokenStorage()
    provider = IdentityAssertionOAuthProvider(
        server_url=as_server.resource_url,
        storage=storage,
        client_id=HOST_APP.client_id,
        client_secret=HOST_APP.client_secret,
        issuer=as_server.issuer,
        assertion_provider=id_jag,
    )

    identity = await _whoami(as_server.resource_url, auth=provider)

    assert asked == [(as_server.issuer, as_server.resource_url)]
    assert identity["sub"] == "sub-bob-globex"
    assert identity["tenant_id"] == "globex"
    assert identity["email"] == "bob@globex.test"
    assert storage.tokens is not None


async def test_two_users_at_once_each_arrive_as_themselves(as_server: RunningAS, mint: IdJagMinter) -> None:
    seen: dict[str, dict[str, Any]] = {}

    async def call_as(user: str, tenant: str) -> None:
        async def id_jag(audience: str, resource: str) -> str:
            return await anyio.to_thread.run_sync(mint.for_user, user, tenant)

        provider = IdentityAssertionOAuthProvider(
            server_url=as_server.resource_url,
            storage=MemoryTokenStorage(),
            client_id=HOST_APP.client_id,
            client_secret=HOST_APP.client_secret,
            issuer=as_server.issuer,
            assertion_provider=id_jag,
        )
        seen[user] = await _whoami(as_server.resource_url, auth=provider)

    async with anyio.create_task_group() as group:
        group.start_soon(call_as, "carol", "acme")
        group.start_soon(call_as, "dave", "initech")

    assert (seen["carol"]["sub"], seen["carol"]["tenant_id"]) == ("sub-carol-acme", "acme")
    assert (seen["dave"]["sub"], seen["dave"]["tenant_id"]) == ("sub-dave-initech", "initech")


def _rpc(url: str, token: str, body: dict[str, Any], session_id: str | None = None) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": LATEST_HANDSHAKE_VERSION,
    }
    if session_id is not None:
        headers["Mcp-Session-Id"] = session_id
    return httpx.post(url, headers=headers, json=body, timeout=10)


def test_users_of_two_idps_who_share_a_sub_never_share_a_session(idfwd_issuer: IssuerHandle) -> None:
    # Subjects are unique per IdP only: two IdPs may well both have a "sub-alice-acme".
    with (
        running_idp() as other_idp,
        running_as(idfwd_issuer.url, trusted_idps=(idfwd_issuer.url, other_idp.url)) as server,
        other_idp.admin() as other_admin,
    ):
        ours = redeem(server, IdJagMinter.for_server(idfwd_issuer.admin, server)()).json()["access_token"]
        theirs = redeem(server, IdJagMinter.for_server(other_admin, server)()).json()["access_token"]
        assert (
            jwt.decode(ours, options={"verify_signature": False})["sub"]
            == jwt.decode(theirs, options={"verify_signature": False})["sub"]
        )
        opened = _rpc(server.resource_url, ours, initialize_request("idjag-test"))
        assert opened.status_code == 200, opened.text
        session_id = opened.headers["mcp-session-id"]
        whoami = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}},
        }
        # The other IdP's namesake cannot ride on this session; its own user can.
        assert _rpc(server.resource_url, theirs, whoami, session_id).status_code == 404
        assert _rpc(server.resource_url, ours, whoami, session_id).status_code == 200
