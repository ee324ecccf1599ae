"""The console in a real browser: headless Chromium (Debian's) driven by Selenium and chromedriver.

Skips with a reason when Chromium, chromedriver or selenium is missing; `.ci/run` installs them and
sets MCP_IDFWD_REQUIRE_BROWSER=1, which turns that skip into a failure. Screenshots of each step are
kept in the test's tmp dir.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from browser_support import headless_chromium
from console_support import ADMIN_SECRET, AUDIENCE, StartIssuer

from fake_enterprise import AdminAPIError


@pytest.fixture
def browser() -> Iterator[Any]:
    with headless_chromium("1400,1300") as driver:
        yield driver


class Screenshots:
    def __init__(self, browser: Any, folder: Path) -> None:
        self._browser = browser
        self._folder = folder
        self._count = 0

    def take(self, name: str) -> Path:
        self._count += 1
        path = self._folder / f"{self._count:02d}-{name}.png"
        assert self._browser.save_screenshot(str(path))
        assert path.stat().st_size > 10_000
        return path


def test_console_in_headless_chromium(start_issuer: StartIssuer, browser: Any, tmp_path: Path) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    issuer = start_issuer()
    shots = Screenshots(browser, tmp_path)
    # A page found while the browser is navigating away goes stale: look again, do not fail.
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))

    def loaded(driver: Any) -> bool:
        return bool(driver.execute_script("return document.readyState") == "complete")

    def submit_and_wait(element: Any, flash_contains: str) -> str:
        """Click a form's button; the page comes back through a redirect with a flash message."""
        element.click()
        wait.until(lambda driver: flash_contains in driver.find_element(By.TAG_NAME, "body").text)
        wait.until(loaded)
        return str(browser.find_element(By.ID, "flash").text)

    # Not signed in: the console sends the browser to the sign-in form. A wrong secret is told so.
    browser.get(f"{issuer.url}/console")
    assert browser.current_url == f"{issuer.url}/console/sign-in"
    browser.find_element(By.ID, "admin_secret").send_keys("not-the-secret")
    browser.find_element(By.ID, "sign-in").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "message") and loaded(driver))
    assert browser.find_element(By.ID, "message").text == "Wrong admin secret."
    shots.take("wrong-secret")
    browser.find_element(By.ID, "admin_secret").send_keys(ADMIN_SECRET)
    browser.find_element(By.ID, "sign-in").click()
    wait.until(lambda driver: driver.current_url == f"{issuer.url}/console" and loaded(driver))
    shots.take("signed-in")
    # The session cookie is out of reach of scripts, and scoped to the console.
    [cookie] = [c for c in browser.get_cookies() if c["name"] == "mcp_idfwd_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"

    # Create a user and grant her SSO sign-in, with the page's forms.
    browser.find_element(By.ID, "new-tenant").send_keys("acme")
    browser.find_element(By.ID, "new-user").send_keys("alice")
    browser.find_element(By.ID, "new-name").send_keys("Alice <Example>")
    browser.find_element(By.ID, "new-email").send_keys("alice@acme.test")
    assert "Created user acme/alice" in submit_and_wait(
        browser.find_element(By.ID, "create-user-button"), "Created user"
    )
    row = 'tr[data-user="acme/alice"]'
    assert "Alice <Example>" in browser.find_element(By.CSS_SELECTOR, row).text
    grant = browser.find_element(By.CSS_SELECTOR, f'{row} button[data-action="grant"]')
    submit_and_wait(grant, "has signed in with SSO")
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .grant-state").text == "active"

    # A host gets a token for her through the inner API; the console shows it, decoded.
    with issuer.admin() as admin:
        token = admin.issue_token("acme", "alice", AUDIENCE)["token"]
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        browser.refresh()
        issued = browser.find_element(By.CSS_SELECTOR, f'tr.event[data-outcome="issued"][data-jti="{jti}"]')
        assert "acme/alice" in issued.text and AUDIENCE in issued.text and "RS256" in issued.text
        decoded = browser.find_element(By.CSS_SELECTOR, f'tr.event-detail[data-jti="{jti}"]')
        decoded.find_element(By.TAG_NAME, "summary").click()
        assert f'"jti": "{jti}"' in decoded.find_element(By.CSS_SELECTOR, "pre.claims").text
        shots.take("issued")

        # Revoke her grant in the console; the next request is refused, and the console says why.
        revoke = browser.find_element(By.CSS_SELECTOR, f'{row} button[data-action="revoke"]')
        submit_and_wait(revoke, "Revoked the SSO grant of acme/alice")
        assert browser.find_element(By.CSS_SELECTOR, f"{row} .grant-state").text == "revoked"
        with pytest.raises(AdminAPIError) as refused:
            admin.issue_token("acme", "alice", AUDIENCE)
        assert refused.value.error == "refresh_rejected"
        browser.refresh()
        newest = browser.find_element(By.CSS_SELECTOR, "tr.event")
        assert newest.get_attribute("data-outcome") == "refused"
        reason = newest.find_element(By.CSS_SELECTOR, ".reason").text
        assert reason == "refresh_rejected: the SSO grant of user 'alice' was revoked"
        browser.find_element(By.CSS_SELECTOR, f'tr.event-detail[data-jti="{jti}"] summary').click()
        shots.take("refused")

        # Rotate the keys: a new current key, the old one retired but still published.
        before = admin.jwks()["keys"][0]["kid"]
        message = submit_and_wait(browser.find_element(By.ID, "rotate-button"), "Rotated")
        after = admin.jwks()["keys"][0]["kid"]
        assert after != before and after in message
        current = browser.find_element(By.CSS_SELECTOR, 'tr.key[data-current="yes"]')
        assert current.get_attribute("data-kid") == after
        assert browser.find_element(By.CSS_SELECTOR, f'tr.key[data-kid="{before}"]').text.count("retired")
    shots.take("rotated")
    assert token not in browser.page_source and token.split(".")[2] not in browser.page_source

    # Sign out: the console is closed again.
    browser.find_element(By.ID, "sign-out").click()
    wait.until(lambda driver: driver.current_url == f"{issuer.url}/console/sign-in" and loaded(driver))
    browser.get(f"{issuer.url}/console")
    assert browser.current_url == f"{issuer.url}/console/sign-in"
