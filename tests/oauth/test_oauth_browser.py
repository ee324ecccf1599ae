"""The sign-in page in a real browser: headless Chromium (Debian's) driven by Selenium and chromedriver.

Skips with a reason when Chromium, chromedriver or selenium is missing; `.ci/run` installs them and
sets MCP_IDFWD_REQUIRE_BROWSER=1, which turns that skip into a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import headless_chromium
from oauth_support import Pkce, RunningIssuer, claims_of, query_of, register
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from harness.servers import bind_loopback, serve_in_thread

RESOURCE = "http://127.0.0.1:9/mcp"


@pytest.fixture
def browser() -> Iterator[Any]:
    with headless_chromium("820,900") as driver:
        yield driver


@pytest.fixture
def callback_url() -> Iterator[str]:
    """A loopback page standing in for the client's redirect URI (what a native app listens on)."""

    async def landed(request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>back at the client</title><p>Signed in.</p>")

    sock = bind_loopback()
    with serve_in_thread(Starlette(routes=[Route("/callback", landed)]), sock) as served:
        yield f"{served.url}/callback"


def test_sign_in_page_in_headless_chromium(
    start_issuer: Any, browser: Any, callback_url: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    issuer: RunningIssuer = start_issuer(auto_login=False)
    with issuer.admin() as admin, httpx.Client(timeout=10.0) as http:
        admin.create_user("acme", "alice", email="alice@acme.test", name="Alice Example")
        admin.create_user("acme", "bob", email="bob@acme.test", name="Bob Example")
        client = register(
            http, issuer.url, client_name="Inspector (browser test)", redirect_uris=[callback_url]
        )
        pkce = Pkce.new()
        authorize = client.authorize(
            pkce, resource=RESOURCE, scope="openid profile email", state="browser-state"
        )
        authorize_url = str(authorize.request.url)

        browser.get(authorize_url)
        consent = browser.find_element(By.ID, "consent").text
        assert "Inspector (browser test)" in consent and RESOURCE in consent
        screenshot = tmp_path / "sign-in.png"
        assert browser.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 10_000

        browser.find_element(By.CSS_SELECTOR, 'button[data-user="acme/alice"]').click()
        WebDriverWait(browser, 20).until(lambda driver: driver.current_url.startswith(callback_url))

        answer = query_of(browser.current_url)
        assert answer["state"] == "browser-state" and answer["iss"] == issuer.url
        tokens = client.exchange_code(answer["code"], pkce, resource=RESOURCE).json()
        assert claims_of(tokens["access_token"])["preferred_username"] == "alice"
        # The person signed in: alice's SSO grant is stored and the inner API now serves her.
        assert admin.issue_token("acme", "alice", RESOURCE)["token"]
