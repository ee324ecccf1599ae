"""Fixtures for the load and fault tests: a stack of their own, so faults never reach other areas' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.stack import LocalStack


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[LocalStack]:
    """An issuer and MCP server for one test module; faults are cleared after every test."""
    with LocalStack() as stack:
        yield stack


@pytest.fixture
def faulty(fault_stack: LocalStack) -> Iterator[LocalStack]:
    """`fault_stack`, with whatever faults the test switched on cleared when it ends."""
    try:
        yield fault_stack
    finally:
        fault_stack.admin.clear_faults()
