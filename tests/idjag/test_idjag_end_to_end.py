"""Enterprise-managed authorization end to end, at the protocol level, with nothing faked:

1. a confidential host client signs the user in at our IdP (code + PKCE, auto-login) for an ID token;
2. it exchanges the ID token at the IdP for an ID-JAG (RFC 8693), under the tenant's allow-list;
3. the SDK's `IdentityAssertionOAuthProvider` presents the ID-JAG to our MCP server's own
   authorization server (RFC 7523 jwt-bearer) for an access token;
4. and calls `whoami` with it, arriving as the user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import pytest
from idjag_support import HOST_APP, RunningAS, RunningIdP, running_as, running_idp, unique
from mcp.client import Client
from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
from mcp.client.streamable_http import streamable_http_client

from harness.oauth_login import DEFAULT_REDIRECT_URI, MemoryTokenStorage, sign_in_confidential

pytestmark = pytest.mark.anyio

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_URN = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_URN = "urn:ietf:params:oauth:token-type:id-jag"
# The host's registration at the IdP is its own, with its own secret (draft §5: three relationships).
IDP_SECRET = "host-app-at-the-idp-secret-0b7d"


@dataclass
class Flow:
    idp: RunningIdP
    mcp: RunningAS
    exchanges: list[tuple[str, str]] = field(default_factory=list)

    async def id_token(self, login_hint: str) -> str:
        tokens = await sign_in_confidential(self.idp.url, HOST_APP.client_id, IDP_SECRET, login_hint)
        return tokens["id_token"]

    async def exchange(self, id_token: str, audience: str, resource: str) -> httpx2.Response:
        """Step 2: the RFC 8693 request for an ID-JAG, as the host client."""
        self.exchanges.append((audience, resource))
        async with httpx2.AsyncClient(timeout=10) as http:
            return await http.post(
                self.idp.url + "/token",
                data={
                    "grant_type": TOKEN_EXCHANGE,
                    "requested_token_type": ID_JAG_URN,
                    "audience": audience,
                    "resource": resource,
                    "scope": "notes.read",
                    "subject_token": id_token,
                    "subject_token_type": ID_TOKEN_URN,
                },
                auth=httpx2.BasicAuth(HOST_APP.client_id, IDP_SECRET),
            )

    def assertion_provider(self, id_token: str) -> Callable[[str, str], Awaitable[str]]:
        """The SDK's hook: the user's ID token exchanged for an ID-JAG for (audience, resource)."""

        async def id_jag(audience: str, resource: str) -> str:
            response = await self.exchange(id_token, audience, resource)
            answer = response.json()
            assert response.status_code == 200, answer
            assert (answer["issued_token_type"], answer["token_type"]) == (ID_JAG_URN, "N_A")
            return answer["access_token"]

        return id_jag

    def provider(self, id_token: str) -> IdentityAssertionOAuthProvider:
        return IdentityAssertionOAuthProvider(
            server_url=self.mcp.resource_url,
            storage=MemoryTokenStorage(),
            client_id=HOST_APP.client_id,
            client_secret=HOST_APP.client_secret,
            issuer=self.mcp.issuer,
            assertion_provider=self.assertion_provider(id_token),
        )


async def _whoami(resource_url: str, auth: httpx2.Auth) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(follow_redirects=False, timeout=httpx2.Timeout(10), auth=auth) as http,
        Client(streamable_http_client(resource_url, http_client=http), read_timeout_seconds=10) as client,
    ):
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    assert result.structured_content is not None
    return result.structured_content


@pytest.fixture(scope="module")
def idp() -> Iterator[RunningIdP]:
    with running_idp() as running, running.admin() as admin:
        admin.create_client(
            client_id=HOST_APP.client_id,
            client_secret=IDP_SECRET,
            redirect_uris=[DEFAULT_REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token", TOKEN_EXCHANGE],
            token_endpoint_auth_method="client_secret_basic",
        )
        yield running


@pytest.fixture(scope="module")
def mcp(idp: RunningIdP) -> Iterator[RunningAS]:
    with running_as(idp.url) as server:
        yield server


@pytest.fixture
def flow(idp: RunningIdP, mcp: RunningAS) -> Flow:
    return Flow(idp, mcp)


async def test_two_users_each_arrive_as_themselves(flow: Flow) -> None:
    tenant = unique("acme")
    with flow.idp.admin() as admin:
        subjects = {
            user: admin.create_user(tenant, user, email=f"{user}@{tenant}.test")["sub"]
            for user in ("ann", "ben")
        }
        admin.allow_id_jag(tenant, HOST_APP.client_id, flow.mcp.issuer, [flow.mcp.resource_url])
    seen: dict[str, dict[str, Any]] = {}

    async def call_as(user: str) -> None:
        id_token = await flow.id_token(f"{tenant}/{user}")
        seen[user] = await _whoami(flow.mcp.resource_url, flow.provider(id_token))

    async with anyio.create_task_group() as group:
        for user in subjects:
            group.start_soon(call_as, user)

    for user, sub in subjects.items():
        assert seen[user]["sub"] == sub
        assert seen[user]["tenant_id"] == tenant
        assert seen[user]["preferred_username"] == user
        assert seen[user]["email"] == f"{user}@{tenant}.test"
        assert seen[user]["iss"] == flow.mcp.issuer  # the MCP server's own AS issued the access token
    assert flow.exchanges == [(flow.mcp.issuer, flow.mcp.resource_url)] * 2


async def test_the_idp_refuses_a_server_outside_the_tenants_allow_list(flow: Flow) -> None:
    tenant = unique("globex")
    with flow.idp.admin() as admin:
        admin.create_user(tenant, "cy")
        admin.allow_id_jag(tenant, HOST_APP.client_id, flow.mcp.issuer, ["http://127.0.0.1:9/another/mcp"])
    id_token = await flow.id_token(f"{tenant}/cy")

    response = await flow.exchange(id_token, flow.mcp.issuer, flow.mcp.resource_url)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
