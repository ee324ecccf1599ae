"""Fixtures for the forwarding-mode tests: one local stack (IdP with auto-login, the default MCP server
and the id-jag one) per module, real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.stack import LocalStack, StackSettings


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackSettings(auto_login=True)) as running:
        running.start_id_jag_server()
        yield running
