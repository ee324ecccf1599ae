"""The inner API secret reaches only the issuer: not a redirect target, not a repr or an error."""

from __future__ import annotations

import httpx
import pytest
from client_support import RequestLog, serve_recorder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from client_runtime import EnterpriseTokenClient, EnterpriseTokenSettings, MCPIssuerConfigError, MCPTokenError

SECRET = "inner-S3cret-of-the-host"


async def test_a_redirecting_issuer_does_not_get_the_secret_resent_elsewhere(
    other_host: tuple[str, RequestLog], anyio_backend: str
) -> None:
    other_url, other_log = other_host

    async def redirect(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{other_url}{request.url.path}", status_code=307)

    issuer, issuer_log = serve_recorder(Starlette(routes=[Route("/{path:path}", redirect, methods=["POST"])]))
    settings = EnterpriseTokenSettings(issuer_url=issuer.url, inner_api_secret=SECRET, retries=0)
    try:
        # A host sharing one client that follows redirects for its own requests.
        async with (
            httpx.AsyncClient(follow_redirects=True) as http,
            EnterpriseTokenClient(settings, http_client=http) as client,
        ):
            with pytest.raises(MCPTokenError, match="HTTP 307") as caught:
                await client.issue_token(tenant_id="t1", user_id="alice", audience="http://127.0.0.1:9/mcp")
    finally:
        issuer.stop()
    assert SECRET not in str(caught.value)
    assert len(issuer_log.since(0)) == 1
    assert other_log.since(0) == []


@pytest.mark.parametrize(
    "issuer_url",
    [
        f"https://host:{SECRET}@issuer.example.com",
        f"https://{SECRET}@issuer.example.com",
        f"https://issuer.example.com/?key={SECRET}",
        f"https://issuer.example.com/#{SECRET}",
    ],
)
def test_an_issuer_url_carrying_a_secret_is_refused_without_echoing_it(issuer_url: str) -> None:
    with pytest.raises(MCPIssuerConfigError, match="inner_api_secret") as caught:
        EnterpriseTokenSettings(issuer_url=issuer_url, inner_api_secret="s")
    assert SECRET not in str(caught.value)
