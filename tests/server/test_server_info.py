"""The reference server introduces itself with the package's version."""

from __future__ import annotations

from importlib.metadata import version

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from server_support import Keys, RunningServer, mint

pytestmark = pytest.mark.anyio


async def test_server_info_reports_the_package_version(server: RunningServer, keys: Keys) -> None:
    token = mint(keys.rsa, issuer=server.issuer, audience=server.resource_url, claims={})
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(server.resource_url, http_client=http)) as client,
    ):
        info = client.server_info
    assert info.version == version("mcp-idfwd")
    assert info.version
