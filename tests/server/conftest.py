"""Server test fixtures (the helpers they build on live in server_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_support import JWKSHost, Keys, RunningServer, generate_keys, hosted_jwks, running_server


@pytest.fixture(scope="session")
def keys() -> Keys:
    return generate_keys()


@pytest.fixture
def jwks_host(keys: Keys) -> Iterator[JWKSHost]:
    with hosted_jwks(keys.rsa, keys.ec, keys.ed) as host:
        yield host


@pytest.fixture
def server(jwks_host: JWKSHost) -> Iterator[RunningServer]:
    with running_server(jwks_host) as running:
        yield running
