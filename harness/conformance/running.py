"""Running the battery: send each case's probe to the server and judge what comes back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import httpx
from mcp.types.version import LATEST_HANDSHAKE_VERSION

from fake_enterprise import AdminClient, AdminClientError
from harness.conformance.cases import CASES, Case
from harness.conformance.challenge import Challenge, parse_challenge
from harness.conformance.forging import Attacker, Forge, attacker_host
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

__all__ = ["initialize_request", "run_battery"]

# Statuses with which the HTTP layer (not the token check) may turn away an oversized header.
_HTTP_LAYER_REFUSALS = frozenset({400, 413, 431})


def initialize_request(client_name: str = "mcp-idfwd-conformance") -> dict[str, Any]:
    """A JSON-RPC MCP `initialize` request, the first thing any client sends (what probes send)."""
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": "1"},
        },
    }


@dataclass(frozen=True)
class _Observed:
    status: int
    challenge: Challenge | None
    raw_challenge: str | None


def _send(http: httpx.Client, target: Target, request: Probe) -> _Observed:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if request.authorization is not None:
        headers["Authorization"] = request.authorization
    # Streamed so an SSE answer to an accepted initialize need not be read to its end.
    with http.stream("POST", target.server_url, json=initialize_request(), headers=headers) as response:
        raw = response.headers.get("www-authenticate")
        session_id = response.headers.get("mcp-session-id")
        observed = _Observed(response.status_code, parse_challenge(raw), raw)
    if session_id and response.is_success and request.authorization is not None:
        # Close the session we opened; a server that refuses this is not under test here.
        with suppress(httpx.HTTPError):
            http.delete(
                target.server_url,
                headers={"Authorization": request.authorization, "Mcp-Session-Id": session_id},
            )
    return observed


def _judge(case: Case, observed: _Observed, fetched: Sequence[str]) -> tuple[Verdict, str]:
    status, challenge = observed.status, observed.challenge
    if case.expect is Expect.ACCEPT:
        if 200 <= status < 300:
            return Verdict.PASS, "accepted"
        return Verdict.FAIL, f"the valid token was refused with {status}" + (
            f" ({challenge})" if challenge else ""
        )
    fetch = [f"the server fetched the URL named in the token ({', '.join(fetched)})"] if fetched else []
    if 200 <= status < 300:
        return Verdict.FAIL, "; ".join(["ACCEPTED a token it must refuse", *fetch])
    if status >= 500:
        return Verdict.FAIL, "; ".join([f"server error {status} instead of a 401 refusal", *fetch])
    if status == 401:
        problems = [*fetch, *_challenge_problems(case.challenge, challenge)]
    elif case.name == "oversized-token" and status in _HTTP_LAYER_REFUSALS:
        return Verdict.PASS, f"refused by the HTTP layer with {status}"
    else:
        problems = [*fetch, f"refused with {status}; RFC 6750 asks for 401"]
    if problems:
        return Verdict.WARN, "; ".join(problems)
    return Verdict.PASS, "refused"


def _challenge_problems(rule: ChallengeRule, challenge: Challenge | None) -> list[str]:
    if rule is ChallengeRule.NONE:
        return []
    if challenge is None or challenge.scheme.lower() != "bearer":
        return ["no Bearer WWW-Authenticate challenge"]
    problems: list[str] = []
    error = challenge.params.get("error")
    if rule is ChallengeRule.INVALID_TOKEN and error != "invalid_token":
        problems.append(f'challenge error is {error!r}, expected "invalid_token"')
    if rule is ChallengeRule.NO_ERROR and error is not None:
        problems.append(f"challenge carries error={error!r} for a request without a token (RFC 6750 §3.1)")
    if "resource_metadata" not in challenge.params:
        problems.append("challenge lacks resource_metadata (MCP authorization, RFC 9728)")
    return problems


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
    """Run `cases` against `target`; raise `ConformanceSetupError` when the battery cannot start."""
    issuer_url = target.issuer_url.rstrip("/")
    notes: list[str] = []
    results: list[CaseResult] = []
    attacker = Attacker.create()
    with (
        httpx.Client(timeout=target.timeout) as http,
        AdminClient(issuer_url, target.secret, timeout=target.timeout) as admin,
        attacker_host(attacker),
    ):
        forge = Forge(admin, target.resource, attacker)
        try:
            _prepare(forge, target, cases, notes)
        except AdminClientError as exc:
            raise ConformanceSetupError(f"cannot use the issuer's admin API at {issuer_url}: {exc}") from None
        for case in cases:
            results.append(_run_case(case, forge, http, target))
    if any(r.verdict is not Verdict.PASS for r in results if r.expected_status == "2xx"):
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
    )


def _run_case(case: Case, forge: Forge, http: httpx.Client, target: Target) -> CaseResult:
    started = time.perf_counter()

    def result(verdict: Verdict, detail: str, observed: _Observed | None = None) -> CaseResult:
        return CaseResult(
            name=case.name,
            title=case.title,
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
        request = case.build(forge)
    except (ConformanceSetupError, AdminClientError) as exc:
        return result(Verdict.ERROR, f"could not forge the token: {exc}")
    fetched_before = len(forge.attacker.fetched)
    try:
        observed = _send(http, target, request)
    except httpx.HTTPError as exc:
        return result(Verdict.ERROR, f"request to the server failed: {type(exc).__name__}")
    fetched = sorted(set(forge.attacker.fetched[fetched_before:]))
    verdict, detail = _judge(case, observed, fetched)
    if request.note:
        detail = f"{detail} [{request.note}]"
    return result(verdict, detail, observed)
