"""The conformance battery: named token defects thrown at an MCP server that trusts an issuer.

Each case forges one defective bearer token (or request) and sends an MCP `initialize` POST
with it. A server that checks tokens properly refuses every defect with 401 and an RFC 6750
challenge, and accepts the positive control. `model` holds the cases, results and verdicts;
`challenge` reads `WWW-Authenticate`; `forging` builds tokens; `cases` is the catalogue;
`running` sends and judges; `report` renders the outcome.
"""

from harness.conformance.cases import CASES, Case
from harness.conformance.challenge import Challenge, parse_challenge
from harness.conformance.model import (
    BatteryReport,
    CaseResult,
    ChallengeRule,
    ConformanceSetupError,
    Expect,
    Probe,
    Target,
    Verdict,
)
from harness.conformance.running import initialize_request, run_battery

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
    "Target",
    "Verdict",
    "initialize_request",
    "parse_challenge",
    "run_battery",
]
