"""Fixtures for the OAuth tests: a real issuer (auto-login on) and an MCP server trusting it, on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from issuer_fixtures import StartIssuer, issuers
from oauth_support import ADMIN_SECRET, SECRET, RunningIssuer

import fake_mcp_server
from fake_enterprise import AdminClient
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread


@contextmanager
def _serving() -> Iterator[list[ServedApp]]:
    running: list[ServedApp] = []
    try:
        yield running
    finally:
        for served in reversed(running):
            served.stop()


def _start(running: list[ServedApp], app_factory: Any) -> ServedApp:
    sock = bind_loopback()
    try:
        served = start_in_thread(app_factory(socket_url(sock)), sock)
    except BaseException:
        sock.close()
        raise
    running.append(served)
    return served


@pytest.fixture
def start_issuer() -> Iterator[StartIssuer]:
    """Start issuers with settings overrides (auto-login on unless told otherwise)."""
    with issuers(secret=SECRET, admin_secret=ADMIN_SECRET, auto_login=True) as start:
        yield start


@pytest.fixture(scope="module")
def module_issuer() -> Iterator[RunningIssuer]:
    with issuers(secret=SECRET, admin_secret=ADMIN_SECRET, auto_login=True) as start:
        yield start()


@pytest.fixture(scope="module")
def mcp_server(module_issuer: RunningIssuer) -> Iterator[str]:
    """The reference MCP server trusting the module's issuer; yields its resource URL."""
    with _serving() as running:
        served = _start(
            running,
            lambda url: fake_mcp_server.create_app(
                fake_mcp_server.ServerSettings(issuer_url=module_issuer.url, resource_url=url + "/mcp")
            ),
        )
        yield served.url + "/mcp"


@pytest.fixture
def admin(module_issuer: RunningIssuer) -> Iterator[AdminClient]:
    with module_issuer.admin() as client:
        yield client


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def alice_subject(admin: AdminClient, tenant: str) -> str:
    """User alice of `tenant` exists (she has not signed in); returns the opaque `sub` the issuer gave her."""
    return admin.create_user(tenant, "alice", email=f"alice@{tenant}.test", name="Alice")["sub"]


@pytest.fixture
def alice(alice_subject: str, tenant: str) -> str:
    """Alice exists (through `alice_subject`); returns her login hint."""
    return f"{tenant}/alice"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client
