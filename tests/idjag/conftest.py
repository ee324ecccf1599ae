"""ID-JAG fixtures: the plugin's issuer as the IdP, and our server running its own authorization server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from idjag_support import IdJagMinter, RunningAS, running_as

from harness.pytest_plugin import IssuerHandle


@pytest.fixture(scope="module")
def as_server(idfwd_issuer: IssuerHandle) -> Iterator[RunningAS]:
    """One server per module: every test mints fresh ID-JAGs (new jti), so they do not interfere."""
    with running_as(idfwd_issuer.url, allow_registration=True) as server:
        yield server


@pytest.fixture
def mint(idfwd_issuer: IssuerHandle, as_server: RunningAS) -> IdJagMinter:
    return IdJagMinter.for_server(idfwd_issuer.admin, as_server)
