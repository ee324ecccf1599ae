"""Checks for any authorization server that accepts ID-JAGs (SEP-990, RFC 7523 jwt-bearer grant).

Each check presents one defective grant or request at the token endpoint and expects the
RFC 6749 §5.2 refusal an authorization server following draft-ietf-oauth-identity-assertion-
authz-grant and the MCP enterprise-managed authorization extension must give; the first check
is the positive control (a valid ID-JAG gets an access token). The ID-JAGs come from a minter
the caller supplies, typically an IdP's test endpoint (our issuer's `/admin/mint`), so the
checks run against any AS that trusts that IdP.

Results say only the HTTP status and the OAuth error code the AS answered, never a token.
`admin_minter` mints through our issuer's `/admin/mint`; `battery_report` turns results into the
token battery's `BatteryReport`, so `mcp-idfwd conformance --idjag` renders them the same way.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from fake_enterprise import AdminClient
from harness.conformance.model import BatteryReport, CaseResult, Requirement, Verdict

__all__ = [
    "IDJAG_CHECKS",
    "ID_JAG_HEADER",
    "IdJagCheck",
    "IdJagCheckResult",
    "IdJagMinter",
    "IdJagTarget",
    "admin_minter",
    "battery_report",
    "run_idjag_checks",
]

IdJagMinter = Callable[[Mapping[str, Any], Mapping[str, Any]], str]
"""`mint(claim_overrides, header_overrides)` -> a signed ID-JAG.

With both empty it must return an ID-JAG the target accepts from its client (right `typ`,
`iss`, `aud`, `client_id`, `resource`, fresh `jti`, short `exp`, any `scope`). An override
replaces that member; a value of None removes it. A `kid` override keeps the real signature.
"""

JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG_HEADER = {"typ": "oauth-id-jag+jwt"}
SOURCE = "draft-ietf-oauth-identity-assertion-authz-grant; MCP enterprise-managed authorization §5.1"
_ESCALATED_SCOPE = "idjag-conformance.admin"
_GRANTED_SCOPE = "idjag-conformance.read"


@dataclass(frozen=True)
class IdJagTarget:
    """The authorization server's token endpoint and one confidential client it knows."""

    token_endpoint: str
    client_id: str
    client_secret: str = field(repr=False)
    timeout: float = 10.0


@dataclass(frozen=True)
class IdJagCheckResult:
    name: str
    passed: bool
    expected: str
    observed: str  # status and OAuth error code only
    seconds: float = 0.0


@dataclass(frozen=True)
class _Answer:
    status: int
    error: str | None
    body: Mapping[str, Any] | None

    def __str__(self) -> str:
        return f"{self.status} {self.error}" if self.error else f"{self.status}"


@dataclass(frozen=True)
class IdJagCheck:
    """One check: `expected` in words, `run` returns (passed, what was observed)."""

    name: str
    expected: str
    run: Callable[[_Session], tuple[bool, str]]


class _Session:
    """One run of the checks: the target, the minter and an HTTP client."""

    def __init__(self, target: IdJagTarget, mint: IdJagMinter, http: httpx.Client) -> None:
        self.target = target
        self.mint = mint
        self._http = http

    def redeem(
        self,
        assertion: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | None = None,
    ) -> _Answer:
        form = {
            "grant_type": JWT_BEARER_GRANT_TYPE,
            "assertion": assertion,
            "client_id": client_id or self.target.client_id,
            "client_secret": client_secret or self.target.client_secret,
        }
        if scope is not None:
            form["scope"] = scope
        try:
            response = self._http.post(self.target.token_endpoint, data=form)
        except httpx.HTTPError as exc:
            return _Answer(0, f"no answer ({type(exc).__name__})", None)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _Answer(response.status_code, "(not a JSON object)", None)
        error = body.get("error")
        return _Answer(response.status_code, error if isinstance(error, str) else None, body)


def _issued(answer: _Answer) -> bool:
    return (
        answer.status == 200
        and answer.body is not None
        and isinstance(answer.body.get("access_token"), str)
        and str(answer.body.get("token_type", "")).lower() == "bearer"
    )


def _refused(answer: _Answer, error: str, statuses: Sequence[int] = (400,)) -> tuple[bool, str]:
    return answer.status in statuses and answer.error == error, str(answer)


def _refusal_check(
    name: str, error: str, claims: Mapping[str, Any] = {}, header: Mapping[str, Any] = {}
) -> IdJagCheck:
    """A check that mints an ID-JAG with these overrides and expects `error` (400)."""

    def run(session: _Session) -> tuple[bool, str]:
        return _refused(session.redeem(session.mint(claims, header)), error)

    return IdJagCheck(name, f"400 {error}", run)


def _valid(session: _Session) -> tuple[bool, str]:
    answer = session.redeem(session.mint({}, {}))
    return _issued(answer), str(answer)


def _replayed(session: _Session) -> tuple[bool, str]:
    assertion = session.mint({}, {})
    first = session.redeem(assertion)
    if not _issued(first):
        return False, f"first use not accepted: {first}"
    return _refused(session.redeem(assertion), "invalid_grant")


def _expired(session: _Session) -> tuple[bool, str]:
    # Ten minutes past exp: beyond any reasonable clock-skew leeway.
    now = int(time.time())
    assertion = session.mint({"iat": now - 900, "nbf": now - 900, "exp": now - 600}, {})
    return _refused(session.redeem(assertion), "invalid_grant")


def _unsigned(session: _Session) -> tuple[bool, str]:
    """A valid ID-JAG turned into `alg: none` with no signature (built here, any minter will do)."""
    header_segment, payload_segment, _ = session.mint({}, {}).split(".")
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4)))
    header = {name: value for name, value in header.items() if name != "kid"} | {"alg": "none"}
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return _refused(session.redeem(f"{encoded}.{payload_segment}."), "invalid_grant")


def _scope_escalation(session: _Session) -> tuple[bool, str]:
    """Asking for more than the ID-JAG grants: refused (invalid_scope), or the extra scope not granted."""
    assertion = session.mint({"scope": _GRANTED_SCOPE}, {})
    answer = session.redeem(assertion, scope=f"{_GRANTED_SCOPE} {_ESCALATED_SCOPE}")
    if answer.error == "invalid_scope" and answer.status == 400:
        return True, str(answer)
    if _issued(answer):
        assert answer.body is not None
        granted = answer.body.get("scope")
        # RFC 6749 §5.1: a response without `scope` means exactly the requested scope was granted.
        if isinstance(granted, str) and _ESCALATED_SCOPE not in granted.split():
            return True, f"{answer} (granted {granted!r})"
        return False, f"{answer} (granted {granted if isinstance(granted, str) else 'the requested scope'!r})"
    return False, str(answer)


def _bad_secret(session: _Session) -> tuple[bool, str]:
    answer = session.redeem(session.mint({}, {}), client_secret=session.target.client_secret + "-wrong")
    return _refused(answer, "invalid_client", (400, 401))


def _unknown_client(session: _Session) -> tuple[bool, str]:
    client_id = f"unknown-client-{secrets.token_hex(6)}"
    answer = session.redeem(session.mint({"client_id": client_id}, {}), client_id=client_id)
    return _refused(answer, "invalid_client", (400, 401))


IDJAG_CHECKS: tuple[IdJagCheck, ...] = (
    IdJagCheck("valid ID-JAG", "200 with a Bearer access token", _valid),
    _refusal_check("wrong typ", "invalid_grant", header={"typ": "JWT"}),
    _refusal_check(
        "wrong aud", "invalid_grant", claims={"aud": "https://another-authorization-server.invalid"}
    ),
    _refusal_check("another client's ID-JAG", "invalid_grant", claims={"client_id": "another-client"}),
    IdJagCheck("replayed jti", "200, then 400 invalid_grant", _replayed),
    IdJagCheck("expired", "400 invalid_grant", _expired),
    _refusal_check("untrusted iss", "invalid_grant", claims={"iss": "https://untrusted-idp.invalid"}),
    _refusal_check(
        "resource for another server", "invalid_grant", claims={"resource": "https://another-mcp.invalid/mcp"}
    ),
    IdJagCheck("alg none", "400 invalid_grant", _unsigned),
    _refusal_check("unknown kid", "invalid_grant", header={"kid": "idjag-conformance-unknown-kid"}),
    IdJagCheck("scope escalation", "400 invalid_scope, or the extra scope not granted", _scope_escalation),
    IdJagCheck("bad client secret", "401 (or 400) invalid_client", _bad_secret),
    IdJagCheck("unknown client", "401 (or 400) invalid_client", _unknown_client),
)


def run_idjag_checks(
    target: IdJagTarget, mint: IdJagMinter, checks: Sequence[IdJagCheck] = IDJAG_CHECKS
) -> list[IdJagCheckResult]:
    """Run `checks` against `target`, in order, each with ID-JAGs from `mint`."""
    results = []
    with httpx.Client(timeout=target.timeout, follow_redirects=False) as http:
        session = _Session(target, mint, http)
        for check in checks:
            started = time.perf_counter()
            passed, observed = check.run(session)
            elapsed = time.perf_counter() - started
            results.append(IdJagCheckResult(check.name, passed, check.expected, observed, elapsed))
    return results


def admin_minter(
    admin: AdminClient,
    *,
    audience: str,
    resource: str,
    client_id: str,
    subject: str = "idjag-conformance-user",
) -> IdJagMinter:
    """ID-JAGs signed by our issuer (`/admin/mint`, so the admin secret), for `client_id` at the
    authorization server `audience` and the MCP server `resource`; the user is a synthetic one."""
    defaults = {
        "sub": subject,
        "aud": audience,
        "resource": resource,
        "client_id": client_id,
        "scope": _GRANTED_SCOPE,
        "tenant_id": "idjag-conformance",
        "preferred_username": subject,
    }

    def mint(claims: Mapping[str, Any], header: Mapping[str, Any]) -> str:
        return admin.mint({**defaults, **claims}, header={**ID_JAG_HEADER, **header})

    return mint


def _observed(observed: str) -> tuple[int | None, str | None]:
    status, _, rest = observed.partition(" ")
    return (int(status), rest or None) if status.isdigit() else (None, observed)


def battery_report(
    results: Sequence[IdJagCheckResult], *, token_endpoint: str, issuer_url: str, audience: str
) -> BatteryReport:
    """The results as the token battery's report (one case per check; a failed check fails)."""
    cases = []
    for result in results:
        status, error = _observed(result.observed)
        cases.append(
            CaseResult(
                name=result.name.lower().replace(" ", "-").replace("'", ""),
                title=result.name,
                source=SOURCE,
                requirement=Requirement.MUST,
                expected_status=result.expected,
                expected_challenge="-",
                observed_status=status,
                observed_challenge=error,
                verdict=Verdict.PASS if result.passed else Verdict.FAIL,
                detail=f"expected {result.expected}, observed {result.observed}",
                seconds=result.seconds,
            )
        )
    return BatteryReport(
        server_url=token_endpoint,
        issuer_url=issuer_url,
        audience=audience,
        results=tuple(cases),
        notes=(
            "ID-JAG checks: each defective grant is presented at the token endpoint (RFC 7523 jwt-bearer)",
        ),
    )
