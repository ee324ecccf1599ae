"""Judging what a server answered to one case: a verdict and the reason for it."""

from __future__ import annotations

from collections.abc import Sequence

from harness.conformance.cases import Case
from harness.conformance.challenge import Challenge
from harness.conformance.exchange import Observed
from harness.conformance.model import ChallengeRule, Expect, Requirement, Verdict

__all__ = ["judge"]


def judge(case: Case, observed: Observed, fetched: Sequence[str], *, strict: bool) -> tuple[Verdict, str]:
    """The verdict on `observed`; `fetched` lists the attacker URLs the server fetched meanwhile."""
    status, challenge = observed.status, observed.challenge
    if case.expect is Expect.ACCEPT:
        if 200 <= status < 300:
            return Verdict.PASS, "accepted"
        return Verdict.FAIL, f"the valid token was refused with {status}" + (
            f" ({challenge})" if challenge else ""
        )
    fetch = [f"the server fetched the URL named in the token ({', '.join(fetched)})"] if fetched else []
    if 200 <= status < 300:
        if case.requirement is Requirement.STRICT and not strict:
            accepted = f"accepted: only the strict profile (--strict) refuses this [{case.source}]"
            return Verdict.WARN, "; ".join([accepted, *fetch])
        must = (
            "ACCEPTED a token the strict profile refuses"
            if case.requirement is Requirement.STRICT
            else ("ACCEPTED a token it must refuse")
        )
        return Verdict.FAIL, "; ".join([must, *fetch])
    if status >= 500:
        return Verdict.FAIL, "; ".join([f"server error {status} instead of a 401 refusal", *fetch])
    if status == 401:
        problems = [*fetch, *_challenge_problems(case.challenge, challenge)]
    elif status in case.refused_with:
        problems = fetch
    else:
        problems = [*fetch, f"refused with {status}; RFC 6750 asks for 401"]
    if problems:
        return Verdict.WARN, "; ".join(problems)
    return Verdict.PASS, "refused" if status == 401 else f"refused with {status}"


def _challenge_problems(rule: ChallengeRule, challenge: Challenge | None) -> list[str]:
    if rule is ChallengeRule.NONE:
        return []
    if challenge is None or challenge.scheme.lower() != "bearer":
        return ["no Bearer WWW-Authenticate challenge"]
    problems: list[str] = []
    if challenge.malformed:
        problems.append(
            f"malformed WWW-Authenticate challenge (RFC 6750 §3, RFC 9110 §11.6.1): {challenge.malformed}"
        )
    error = challenge.params.get("error")
    if rule is ChallengeRule.INVALID_TOKEN and error != "invalid_token":
        problems.append(f'challenge error is {error!r}, expected "invalid_token"')
    if rule is ChallengeRule.NO_ERROR and error is not None:
        problems.append(f"challenge carries error={error!r} for a request without a token (RFC 6750 §3.1)")
    if "resource_metadata" not in challenge.params:
        problems.append("challenge lacks resource_metadata (MCP authorization, RFC 9728)")
    return problems
