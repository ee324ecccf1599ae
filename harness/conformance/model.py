"""What the battery is made of: targets, cases, verdicts and the report they add up to."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "BatteryReport",
    "CaseResult",
    "CaseSkipped",
    "ChallengeRule",
    "ConformanceSetupError",
    "Expect",
    "Probe",
    "Requirement",
    "ServerUnreachable",
    "Target",
    "Verdict",
]


class ConformanceSetupError(Exception):
    """The battery could not be set up (issuer unreachable, wrong secret, unusable JWKS, ...)."""


class ServerUnreachable(ConformanceSetupError):
    """The MCP server under test could not be reached at all (nothing to judge)."""


class CaseSkipped(Exception):
    """This case cannot be judged here (the issuer or the server lacks what it needs); says why."""


class Expect(StrEnum):
    REFUSE = "refuse"
    ACCEPT = "accept"


class ChallengeRule(StrEnum):
    """What the `WWW-Authenticate` challenge of a refusal must say."""

    INVALID_TOKEN = "invalid_token"  # Bearer, error="invalid_token" (the request carried a bad token)
    NO_ERROR = "no_error"  # Bearer, no error code (RFC 6750 §3.1: the request carried no token)
    BEARER = "bearer"  # Bearer, error code optional (no usable Bearer credentials)
    NONE = "none"  # nothing to check (the positive control)


class Requirement(StrEnum):
    """Who asks a server to refuse a case's defect, and so how hard accepting it counts."""

    MUST = "must"  # an RFC or the MCP spec: accepting it fails
    STRICT = "strict"  # only the strict profile: accepting it warns, and fails under `strict`


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"  # refused, but not as RFC 6750 / MCP ask; or accepted what only the strict profile refuses
    FAIL = "fail"  # accepted a defect it must refuse, refused the valid token, or crashed (5xx)
    ERROR = "error"  # the case could not be run
    SKIP = "skip"


@dataclass(frozen=True)
class Target:
    """The server under test and the issuer it trusts.

    `server_url` is the MCP endpoint (e.g. `http://127.0.0.1:9100/mcp`); `audience` is the
    resource URL tokens for it carry, by default `server_url`. `admin_secret` opens the issuer's
    admin API (the battery mints through `POST /admin/mint`). `strict` judges by the strict
    profile: accepting a case of `Requirement.STRICT` then fails instead of warning.
    """

    server_url: str
    issuer_url: str
    admin_secret: str = field(repr=False)
    audience: str | None = None
    rotate_keys: bool = True
    timeout: float = 10.0
    strict: bool = False

    @property
    def resource(self) -> str:
        return self.audience or self.server_url


@dataclass(frozen=True)
class Probe:
    """What one case sends: the `Authorization` header value (or none at all), and a note on it.

    With `session_owner`, the battery first opens an MCP session with that `Authorization` and
    checks that the session serves it, then sends this probe's request on that session.
    """

    authorization: str | None
    note: str = ""
    session_owner: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CaseResult:
    name: str
    title: str
    source: str
    requirement: Requirement
    expected_status: str
    expected_challenge: str
    observed_status: int | None
    observed_challenge: str | None
    verdict: Verdict
    detail: str
    seconds: float


@dataclass(frozen=True)
class BatteryReport:
    server_url: str
    issuer_url: str
    audience: str
    results: tuple[CaseResult, ...]
    notes: tuple[str, ...] = ()
    strict: bool = False

    def count(self, verdict: Verdict) -> int:
        return sum(1 for result in self.results if result.verdict is verdict)

    @property
    def exit_code(self) -> int:
        """0: every case passed (warnings allowed); 1: a case failed; 2: a case could not run."""
        if self.count(Verdict.FAIL):
            return 1
        if self.count(Verdict.ERROR):
            return 2
        return 0
