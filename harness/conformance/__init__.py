"""The conformance battery: named token defects thrown at an MCP server that trusts an issuer.

Each case forges one defective bearer token (or request) and sends an MCP `initialize` POST
with it. A server that checks tokens properly refuses every defect with 401 and an RFC 6750
challenge, and accepts the positive control. `model` holds targets, requirements, verdicts and
results; `challenge` reads `WWW-Authenticate`; `forging` builds tokens; `cases` is the
catalogue, each case with its source; `exchange` talks MCP over HTTP; `judging` gives verdicts;
`running` ties them together; `report` renders the outcome.
"""

from harness.conformance.cases import CASES, Case
from harness.conformance.challenge import Challenge, parse_challenge
from harness.conformance.exchange import initialize_request
from harness.conformance.model import (
    BatteryReport,
    CaseResult,
    ChallengeRule,
    ConformanceSetupError,
    Expect,
    Probe,
    Requirement,
    ServerUnreachable,
    Target,
    Verdict,
)
from harness.conformance.running import run_battery

__all__ = [
    "CASES",
    "BatteryReport",
    "Case",
    "CaseResult",
    "Challenge",
    "ChallengeRule",
    "ConformanceSetupError",
    "Expect",
    "Probe",
    "Requirement",
    "ServerUnreachable",
    "Target",
    "Verdict",
    "initialize_request",
    "parse_challenge",
    "run_battery",
]
