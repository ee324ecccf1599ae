"""Running the battery: set up the forge, send each case's probe, collect the verdicts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from fake_enterprise import AdminClient, AdminClientError
from harness.conformance.cases import CASES, Case
from harness.conformance.exchange import Observed, SessionRefused, check_reachable, send
from harness.conformance.forging import Attacker, Forge, attacker_host
from harness.conformance.judging import judge
from harness.conformance.model import (
    BatteryReport,
    CaseResult,
    CaseSkipped,
    ConformanceSetupError,
    Expect,
    Target,
    Verdict,
)

__all__ = ["run_battery"]


def _prepare(forge: Forge, target: Target, cases: Sequence[Case], notes: list[str]) -> None:
    forge.jwks = _fetch_jwks(forge.admin)
    several_keys_needed = any(case.needs_several_keys for case in cases)
    if several_keys_needed and len(forge.jwks["keys"]) < 2 and target.rotate_keys:
        forge.admin.rotate_keys()
        forge.jwks = _fetch_jwks(forge.admin)
        published = len(forge.jwks["keys"])
        notes.append(
            "the issuer's JWKS had one key, so the battery rotated the issuer's signing key "
            f"(POST /admin/keys/rotate) to test no-kid; it now publishes {published} keys"
        )
    forge.valid_token = forge.mint()


def _fetch_jwks(admin: AdminClient) -> dict[str, Any]:
    jwks = admin.jwks()
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ConformanceSetupError("the issuer's /.well-known/jwks.json is not a JWKS")
    return jwks


def run_battery(target: Target, cases: Sequence[Case] = CASES) -> BatteryReport:
    """Run `cases` against `target`.

    Raises `ServerUnreachable` when the server does not answer at all, and
    `ConformanceSetupError` when the battery cannot start for another reason (the issuer).
    """
    issuer_url = target.issuer_url.rstrip("/")
    notes: list[str] = []
    results: list[CaseResult] = []
    attacker = Attacker.create()
    with (
        httpx.Client(timeout=target.timeout) as http,
        AdminClient(issuer_url, target.admin_secret, timeout=target.timeout) as admin,
    ):
        check_reachable(http, target)
        forge = Forge(admin, target.resource, attacker)
        try:
            _prepare(forge, target, cases, notes)
        except AdminClientError as exc:
            raise ConformanceSetupError(f"cannot use the issuer's admin API at {issuer_url}: {exc}") from None
        with attacker_host(attacker):
            results.extend(_run_case(case, forge, http, target) for case in cases)
    if any(
        r.verdict is not Verdict.PASS
        for r, c in zip(results, cases, strict=True)
        if c.expect is Expect.ACCEPT
    ):
        notes.append(
            "the valid token was refused, so the refusals prove little: check that the server trusts "
            f"this issuer and expects aud={target.resource} (--audience)"
        )
    return BatteryReport(
        server_url=target.server_url,
        issuer_url=issuer_url,
        audience=target.resource,
        results=tuple(results),
        notes=tuple(notes),
        strict=target.strict,
    )


def _run_case(case: Case, forge: Forge, http: httpx.Client, target: Target) -> CaseResult:
    started = time.perf_counter()

    def result(verdict: Verdict, detail: str, observed: Observed | None = None) -> CaseResult:
        return CaseResult(
            name=case.name,
            title=case.title,
            source=case.source,
            requirement=case.requirement,
            expected_status=case.expected_status,
            expected_challenge=case.expected_challenge,
            observed_status=observed.status if observed else None,
            observed_challenge=str(observed.challenge) if observed and observed.challenge else None,
            verdict=verdict,
            detail=detail,
            seconds=time.perf_counter() - started,
        )

    if case.needs_several_keys and len(forge.jwks.get("keys", [])) < 2:
        return result(Verdict.SKIP, "the issuer's JWKS has one key (key rotation disabled)")
    try:
        probe = case.build(forge)
    except CaseSkipped as exc:
        return result(Verdict.SKIP, str(exc))
    except (ConformanceSetupError, AdminClientError) as exc:
        return result(Verdict.ERROR, f"could not forge the token: {exc}")
    fetched_before = len(forge.attacker.fetched)
    try:
        observed = send(http, target, probe)
    except CaseSkipped as exc:
        return result(Verdict.SKIP, str(exc))
    except SessionRefused as exc:
        return result(Verdict.ERROR, f"could not set up the session: {exc}")
    except httpx.HTTPError as exc:
        return result(Verdict.ERROR, f"request to the server failed: {type(exc).__name__}")
    fetched = sorted(set(forge.attacker.fetched[fetched_before:]))
    verdict, detail = judge(case, observed, fetched, strict=target.strict)
    if probe.note:
        detail = f"{detail} [{probe.note}]"
    return result(verdict, detail, observed)
