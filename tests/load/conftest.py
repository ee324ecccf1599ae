"""Fixtures for the load and fault tests: a stack of their own, so faults never reach other areas' tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack import LocalStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/load is a load or fault test: `-m "not slow"` skips them in an
    # everyday run; CI runs them all.
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.slow)


_HERE = Path(__file__).parent


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
