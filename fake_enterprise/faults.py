"""Fault injection: the failures a test can switch on to see how callers cope."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FaultSwitch", "Faults"]

# The contract's error code for a forced status, where the status has exactly one.
_CONTRACT_ERRORS = {
    400: "invalid_request",
    403: "policy_denied",
    404: "unknown_user",
    428: "no_refresh_token",
}


@dataclass(frozen=True)
class Faults:
    latency_ms: int = 0
    issue_token_status: int | None = None
    issue_token_error: str | None = None
    jwks_unavailable: bool = False

    def forced_error(self) -> str:
        """The error code sent with a forced issue-token status."""
        if self.issue_token_error:
            return self.issue_token_error
        if self.issue_token_status in _CONTRACT_ERRORS:
            return _CONTRACT_ERRORS[self.issue_token_status]
        return "injected_fault"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultSwitch:
    """The faults in force; replaced as a whole, read without tearing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = Faults()

    @property
    def current(self) -> Faults:
        with self._lock:
            return self._faults

    def set(self, faults: Faults) -> Faults:
        with self._lock:
            self._faults = faults
        return faults

    def clear(self) -> Faults:
        return self.set(Faults())
