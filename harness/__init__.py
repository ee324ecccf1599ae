"""Runs the whole flow: CLI, local stack, demo, conformance battery, pytest plugin.

The stack and the battery are imported on first use (PEP 562), so loading the pytest plugin,
which imports this package, does not import the issuer, the server and the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from harness.servers import ServedApp, bind_loopback, serve_in_thread, start_in_thread

if TYPE_CHECKING:
    from harness.conformance import BatteryReport, CaseResult, ConformanceSetupError, Target, run_battery
    from harness.stack import LocalStack, StackSettings, StackUser

__all__ = [
    "BatteryReport",
    "CaseResult",
    "ConformanceSetupError",
    "LocalStack",
    "ServedApp",
    "StackSettings",
    "StackUser",
    "Target",
    "bind_loopback",
    "run_battery",
    "serve_in_thread",
    "start_in_thread",
]

_LAZY = {
    "BatteryReport": "harness.conformance",
    "CaseResult": "harness.conformance",
    "ConformanceSetupError": "harness.conformance",
    "Target": "harness.conformance",
    "run_battery": "harness.conformance",
    "LocalStack": "harness.stack",
    "StackSettings": "harness.stack",
    "StackUser": "harness.stack",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
