"""Fixtures for the console's tests: real issuers on loopback ports, a console session over httpx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from console_support import ADMIN_SECRET, SECRET, ConsoleBrowser, RunningIssuer, StartIssuer
from issuer_fixtures import issuers


@pytest.fixture
def start_issuer() -> Iterator[StartIssuer]:
    """Start issuers with settings overrides (`issuer_url` may be given: it need not be where it listens)."""
    with issuers(secret=SECRET, admin_secret=ADMIN_SECRET) as start:
        yield start


@pytest.fixture(scope="module")
def module_issuer() -> Iterator[RunningIssuer]:
    """One issuer for a module's tests that keep to their own tenant."""
    with issuers(secret=SECRET, admin_secret=ADMIN_SECRET, auto_login=True) as start:
        yield start()


@pytest.fixture
def console(module_issuer: RunningIssuer) -> Iterator[ConsoleBrowser]:
    """A fresh cookie jar on the module's issuer, not signed in."""
    with httpx.Client(base_url=module_issuer.url, timeout=10.0) as http:
        yield ConsoleBrowser(http)


@pytest.fixture
def signed_in(console: ConsoleBrowser) -> ConsoleBrowser:
    answer = console.sign_in()
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    return console


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:12]}"
