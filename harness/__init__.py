"""Runs the whole flow: CLI, local stack, demo, conformance battery, pytest plugin.

Everything is imported on first use (PEP 562), so loading the pytest plugin or the CLI, which
import this package, does not import uvicorn, the issuer, the server and the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.conformance import BatteryReport, CaseResult, ConformanceSetupError, Target, run_battery
    from harness.servers import ServedApp, bind_loopback, serve_in_thread, start_in_thread
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
    "ServedApp": "harness.servers",
    "bind_loopback": "harness.servers",
    "serve_in_thread": "harness.servers",
    "start_in_thread": "harness.servers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
