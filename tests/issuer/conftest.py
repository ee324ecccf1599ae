"""Fixtures for the issuer's tests: a real issuer on a loopback port, and its admin client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest
from issuer_fixtures import issuers
from issuer_support import ADMIN_SECRET, SECRET, RunningIssuer, StartIssuer

from fake_enterprise import AdminClient


def _issuers() -> AbstractContextManager[StartIssuer]:
    return issuers(secret=SECRET, admin_secret=ADMIN_SECRET)


@pytest.fixture
def start_issuer() -> Iterator[StartIssuer]:
    """Start issuers with settings overrides; all are stopped at teardown."""
    with _issuers() as start:
        yield start


@pytest.fixture(scope="module")
def module_issuer() -> Iterator[RunningIssuer]:
    """One issuer for a whole module, for tests that leave no state behind (bad input, reads)."""
    with _issuers() as start:
        yield start()


@pytest.fixture
def issuer(start_issuer: StartIssuer) -> RunningIssuer:
    """A fresh issuer of its own, for tests that change issuer-wide state (faults, keys, clock)."""
    return start_issuer()


@pytest.fixture
def admin(module_issuer: RunningIssuer) -> Iterator[AdminClient]:
    """The module's shared issuer; tests keep to their own `tenant`."""
    with module_issuer.admin() as client:
        yield client


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def signed_in(admin: AdminClient, tenant: str) -> str:
    """User `alice` of `tenant` has signed in with SSO; returns the tenant."""
    admin.create_user(tenant, "alice", email="alice@acme.test", name="Alice")
    admin.grant(tenant, "alice")
    return tenant
