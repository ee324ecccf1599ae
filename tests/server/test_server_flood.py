"""1,000 requests carrying made-up kids cost the issuer a handful of JWKS fetches, not 1,000."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from server_support import JWKSHost, Keys, RunningServer, mint, running_server

pytestmark = pytest.mark.anyio


async def test_unknown_kid_flood_over_http(jwks_host: JWKSHost, keys: Keys) -> None:
    # A refresh interval longer than the flood lasts on a busy machine: the count must not
    # depend on how fast 1,000 requests go through.
    with running_server(jwks_host, min_jwks_refresh_interval=120) as server:
        await _flood(server, jwks_host, keys)


async def _flood(server: RunningServer, jwks_host: JWKSHost, keys: Keys) -> None:
    tokens = [
        mint(keys.ed, issuer=server.issuer, audience=server.resource_url, header={"kid": uuid.uuid4().hex})
        for _ in range(1000)
    ]
    gate = asyncio.Semaphore(25)

    async with httpx.AsyncClient(timeout=30) as http:

        async def post(token: str) -> tuple[int, str]:
            async with gate:
                response = await http.post(server.resource_url, headers={"Authorization": f"Bearer {token}"})
            return response.status_code, response.json()["error_description"]

        results = await asyncio.gather(*(post(token) for token in tokens))
        assert set(results) == {(401, "unknown signing key")}
        assert jwks_host.fetches <= 2

        genuine = mint(keys.rsa, issuer=server.issuer, audience=server.resource_url)
        response = await http.post(
            server.resource_url,
            headers={"Authorization": f"Bearer {genuine}", "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        )
        assert response.status_code != 401
