"""Fault injection: the failures a test can switch on to see how callers cope."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

from fake_enterprise.storage import Database

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
    """The faults in force, kept in the database so every worker process obeys the same switches.

    Replaced as a whole, read without tearing. Each process keeps a copy and rereads the row only
    when `PRAGMA data_version` says another process has committed something since it last looked.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._seen_version: int | None = None
        self._faults = Faults()
        # Switches are for the run that set them: a restarted issuer starts with none.
        self.clear()

    @property
    def current(self) -> Faults:
        with self._lock:
            version = self._db.data_version()
            if version != self._seen_version:
                self._seen_version = version
                with self._db.reading() as conn:
                    row = conn.execute("SELECT value FROM meta WHERE name = 'faults'").fetchone()
                self._faults = Faults() if row is None else Faults(**json.loads(row["value"]))
            return self._faults

    def set(self, faults: Faults) -> Faults:
        with self._lock:
            with self._db.transaction() as conn:
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('faults', ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (json.dumps(faults.as_json()),),
                )
            self._faults = faults
        return faults

    def clear(self) -> Faults:
        return self.set(Faults())
