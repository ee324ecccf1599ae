"""The conformance battery: named token defects thrown at an MCP server that trusts an issuer.

Each case forges one defective bearer token (or request) and sends an MCP `initialize` POST
with it. A server that checks tokens properly refuses every defect with 401 and an RFC 6750
challenge, and accepts the positive control. Tokens that need the issuer's private key are
minted through the issuer's admin API (`POST /admin/mint`, which signs with the current key
and lets the caller override header and claims); tokens an attacker would sign with their own
key (embedded `jwk`, `jku`, `x5u`, `x5c`, HS256 keyed with the issuer's public key) are signed
here. The `jku` and `x5u` URLs point at a loopback host this battery serves for the run, so a
server that fetches them is caught doing so.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.utils import base64url_decode, base64url_encode
from mcp.types.version import LATEST_HANDSHAKE_VERSION
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_enterprise import AdminClient, AdminClientError
from harness.servers import bind_loopback, start_in_thread

__all__ = [
    "CASES",
    "BatteryReport",
    "Case",
    "CaseResult",
    "ChallengeRule",
    "ConformanceSetupError",
    "Expect",
    "Target",
    "Verdict",
    "parse_challenge",
    "run_battery",
]

_OVERSIZE_BYTES = 17 * 1024
# Statuses with which the HTTP layer (not the token check) may turn away an oversized header.
_HTTP_LAYER_REFUSALS = frozenset({400, 413, 431})
_OTHER_AUDIENCE = "http://127.0.0.1:9/another-mcp-server/mcp"
_OTHER_ISSUER = "http://127.0.0.1:9/another-issuer"


class ConformanceSetupError(Exception):
    """The battery could not be set up (issuer unreachable, wrong secret, unusable JWKS, ...)."""


class Expect(StrEnum):
    REFUSE = "refuse"
    ACCEPT = "accept"


class ChallengeRule(StrEnum):
    """What the `WWW-Authenticate` challenge of a refusal must say."""

    INVALID_TOKEN = "invalid_token"  # Bearer, error="invalid_token" (the request carried a bad token)
    NO_ERROR = "no_error"  # Bearer, no error code (RFC 6750 §3.1: the request carried no token)
    BEARER = "bearer"  # Bearer, error code optional (no usable Bearer credentials)
    NONE = "none"  # nothing to check (the positive control)


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"  # refused, but the status or challenge is not what RFC 6750 / MCP ask for
    FAIL = "fail"  # accepted a defect, refused the valid token, or crashed (5xx)
    ERROR = "error"  # the case could not be run
    SKIP = "skip"


@dataclass(frozen=True)
class Target:
    """The server under test and the issuer it trusts.

    `server_url` is the MCP endpoint (e.g. `http://127.0.0.1:9100/mcp`); `audience` is the
    resource URL tokens for it carry, by default `server_url`.
    """

    server_url: str
    issuer_url: str
    secret: str = field(repr=False)
    audience: str | None = None
    rotate_keys: bool = True
    timeout: float = 10.0

    @property
    def resource(self) -> str:
        return self.audience or self.server_url


@dataclass(frozen=True)
class Challenge:
    """A parsed `WWW-Authenticate` challenge: its scheme and auth-params."""

    scheme: str
    params: dict[str, str]

    def __str__(self) -> str:
        error = self.params.get("error")
        return f"{self.scheme} error={error}" if error else self.scheme


@dataclass(frozen=True)
class Probe:
    """What one case sends: the `Authorization` header value (or none at all), and a note on it."""

    authorization: str | None
    note: str = ""


@dataclass(frozen=True)
class Case:
    """One named defect: how to forge it and what a correct server does with it."""

    name: str
    title: str
    build: Callable[[_Forge], Probe] = field(repr=False)
    expect: Expect = Expect.REFUSE
    challenge: ChallengeRule = ChallengeRule.INVALID_TOKEN
    needs_several_keys: bool = False

    @property
    def expected_status(self) -> str:
        return "2xx" if self.expect is Expect.ACCEPT else "401"

    @property
    def expected_challenge(self) -> str:
        return {
            ChallengeRule.INVALID_TOKEN: "Bearer error=invalid_token",
            ChallengeRule.NO_ERROR: "Bearer (no error)",
            ChallengeRule.BEARER: "Bearer",
            ChallengeRule.NONE: "-",
        }[self.challenge]


@dataclass(frozen=True)
class CaseResult:
    name: str
    title: str
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


def parse_challenge(value: str | None) -> Challenge | None:
    """Parse the first challenge of a `WWW-Authenticate` value (RFC 9110 §11.6.1)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        start = i
        while i < n and rest[i] not in "=, ":
            i += 1
        key = rest[start:i].lower()
        while i < n and rest[i] == " ":
            i += 1
        if i >= n or rest[i] != "=":
            break  # a token68 or the start of the next challenge: not ours to read
        i += 1
        while i < n and rest[i] == " ":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1
            params[key] = "".join(chars)
        else:
            start = i
            while i < n and rest[i] not in ", ":
                i += 1
            params[key] = rest[start:i]
    return Challenge(scheme=scheme, params=params)


# --- forging ---------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64url_encode(data).decode()


def _segments(token: str) -> list[str]:
    return token.split(".")


def _payload(token: str) -> dict[str, Any]:
    return json.loads(base64url_decode(_segments(token)[1]))


def _header(token: str) -> dict[str, Any]:
    return json.loads(base64url_decode(_segments(token)[0]))


@dataclass
class _Attacker:
    """An attacker's own RSA key, its JWKS and certificate, served on loopback for the run."""

    key: rsa.RSAPrivateKey = field(repr=False)
    kid: str
    jwk: dict[str, Any]
    cert_der: bytes = field(repr=False)
    base_url: str = ""
    fetched: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def create(cls) -> _Attacker:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"attacker-{uuid.uuid4().hex[:8]}"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-idfwd conformance attacker")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, kid=kid, jwk=jwk, cert_der=cert.public_bytes(serialization.Encoding.DER))

    def record(self, path: str) -> None:
        with self._lock:
            self.fetched.append(path)

    def app(self) -> Starlette:
        async def jwks(request: Request) -> Response:
            self.record(request.url.path)
            return JSONResponse({"keys": [self.jwk]})

        async def cert(request: Request) -> Response:
            self.record(request.url.path)
            pem = base64.encodebytes(self.cert_der).decode()
            body = f"-----BEGIN CERTIFICATE-----\n{pem}-----END CERTIFICATE-----\n"
            return Response(body, media_type="application/pem-certificate-chain")

        return Starlette(routes=[Route("/jwks.json", jwks), Route("/cert.pem", cert)])

    def sign(self, claims: dict[str, Any], header: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers=header)


@dataclass
class _Forge:
    """Everything the cases need to build their tokens, set up once per run."""

    admin: AdminClient
    audience: str
    attacker: _Attacker
    jwks: dict[str, Any] = field(default_factory=dict, repr=False)
    valid_token: str = field(default="", repr=False)

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        header: dict[str, Any] | None = None,
        hmac_key: str | None = None,
    ) -> str:
        """A token from the issuer's `/admin/mint`: a valid one, changed by `claims` and `header`.

        A `None` value removes that claim or header member; `hmac_key` signs an HS* header alg.
        """
        claims = {**self.default_claims(), **(claims or {})}
        try:
            return self.admin.mint(claims, header=header, hmac_key=hmac_key)
        except AdminClientError as exc:
            raise ConformanceSetupError(f"the issuer's POST /admin/mint failed: {exc}") from None

    def default_claims(self) -> dict[str, Any]:
        return {
            "sub": "conformance-user",
            "aud": self.audience,
            "tenant_id": "conformance",
            "email": "conformance-user@example.com",
            "name": "Conformance User",
        }

    def fresh_claims(self) -> dict[str, Any]:
        """The valid token's claims with a new `jti`, for the tokens the attacker signs here."""
        return {**_payload(self.valid_token), "jti": uuid.uuid4().hex}

    def valid_kid(self) -> str | None:
        return _header(self.valid_token).get("kid")

    def issuer_public_pem(self) -> str:
        """The PEM of the issuer's public key that signed the valid token (the HS256 "secret")."""
        kid = self.valid_kid()
        keys = self.jwks.get("keys", [])
        jwk_dict = next((k for k in keys if k.get("kid") == kid), keys[0] if keys else None)
        if jwk_dict is None:
            raise ConformanceSetupError("the issuer's JWKS has no keys")
        public_key = jwt.PyJWK(jwk_dict).key
        pem = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode()


def _bearer(token: str, note: str = "") -> Probe:
    return Probe(authorization=f"Bearer {token}", note=note)


def _now() -> int:
    return int(time.time())


def _valid_control(forge: _Forge) -> Probe:
    return _bearer(forge.valid_token)


def _alg_none(forge: _Forge) -> Probe:
    return _bearer(forge.mint(header={"alg": "none"}), "issuer's kid, empty signature")


def _hs256_public_key(forge: _Forge) -> Probe:
    token = forge.mint(header={"alg": "HS256"}, hmac_key=forge.issuer_public_pem())
    return _bearer(token, "HMAC key: the issuer's public key as PEM, issuer's kid")


def _embedded_jwk(forge: _Forge) -> Probe:
    attacker = forge.attacker
    header = {"typ": "JWT", "kid": attacker.kid, "jwk": attacker.jwk}
    return _bearer(attacker.sign(forge.fresh_claims(), header), "signed with the key it embeds")


def _jku(forge: _Forge) -> Probe:
    attacker = forge.attacker
    header = {"typ": "JWT", "kid": attacker.kid, "jku": f"{attacker.base_url}/jwks.json"}
    return _bearer(attacker.sign(forge.fresh_claims(), header), "jku points at an attacker JWKS")


def _x5u(forge: _Forge) -> Probe:
    attacker = forge.attacker
    header = {"typ": "JWT", "kid": attacker.kid, "x5u": f"{attacker.base_url}/cert.pem"}
    return _bearer(attacker.sign(forge.fresh_claims(), header), "x5u points at an attacker certificate")


def _x5c(forge: _Forge) -> Probe:
    attacker = forge.attacker
    header = {"typ": "JWT", "kid": attacker.kid, "x5c": [base64.b64encode(attacker.cert_der).decode()]}
    return _bearer(attacker.sign(forge.fresh_claims(), header), "signed with the certificate it embeds")


def _unknown_kid(forge: _Forge) -> Probe:
    return _bearer(forge.mint(header={"kid": f"unknown-{uuid.uuid4().hex[:12]}"}), "issuer-signed")


def _no_kid(forge: _Forge) -> Probe:
    token = forge.mint(header={"kid": None})
    if "kid" in _header(token):
        raise ConformanceSetupError("the issuer's /admin/mint cannot leave out the kid header")
    keys = len(forge.jwks.get("keys", []))
    return _bearer(token, f"issuer-signed; the JWKS has {keys} keys")


def _bad_signature(forge: _Forge) -> Probe:
    header, payload, signature = _segments(forge.mint())
    raw = bytearray(base64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return _bearer(f"{header}.{payload}.{_b64(bytes(raw))}", "one bit of the signature flipped")


def _stripped_signature(forge: _Forge) -> Probe:
    header, payload, _ = _segments(forge.mint())
    return _bearer(f"{header}.{payload}.")


def _expired(forge: _Forge) -> Probe:
    now = _now()
    return _bearer(forge.mint({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}), "exp 1 h ago")


def _not_yet_valid(forge: _Forge) -> Probe:
    now = _now()
    return _bearer(forge.mint({"iat": now, "nbf": now + 3600, "exp": now + 7200}), "nbf in 1 h")


def _iat_in_future(forge: _Forge) -> Probe:
    now = _now()
    return _bearer(forge.mint({"iat": now + 3600, "nbf": now, "exp": now + 7200}), "iat in 1 h")


def _wrong_aud(forge: _Forge) -> Probe:
    return _bearer(forge.mint({"aud": _OTHER_AUDIENCE}), f"aud={_OTHER_AUDIENCE}")


def _aud_suffixed(forge: _Forge) -> Probe:
    audience = f"{forge.audience}-evil"
    return _bearer(forge.mint({"aud": audience}), f"aud={audience}")


def _aud_array_without_server(forge: _Forge) -> Probe:
    audiences = [_OTHER_AUDIENCE, f"{_OTHER_AUDIENCE}/2"]
    return _bearer(forge.mint({"aud": audiences}), "aud=[two other servers]")


def _wrong_iss(forge: _Forge) -> Probe:
    return _bearer(forge.mint({"iss": _OTHER_ISSUER}), f"iss={_OTHER_ISSUER}")


def _missing_sub(forge: _Forge) -> Probe:
    token = forge.mint({"sub": None})
    if "sub" in _payload(token):
        raise ConformanceSetupError("the issuer's /admin/mint cannot leave out the sub claim")
    return _bearer(token)


def _unknown_crit(forge: _Forge) -> Probe:
    extension = "urn:mcp-idfwd:conformance"
    return _bearer(forge.mint(header={"crit": [extension], extension: True}), f"crit=[{extension}]")


def _oversized(forge: _Forge) -> Probe:
    token = forge.mint({"padding": "x" * _OVERSIZE_BYTES})
    return _bearer(token, f"{len(token)} bytes, issuer-signed")


def _two_segments(forge: _Forge) -> Probe:
    header, payload, _ = _segments(forge.mint())
    return _bearer(f"{header}.{payload}")


def _bad_base64(forge: _Forge) -> Probe:
    header, _, signature = _segments(forge.mint())
    return _bearer(f"{header}.%%not*base64%%.{signature}")


def _bad_json(forge: _Forge) -> Probe:
    _, payload, signature = _segments(forge.mint())
    return _bearer(f"{_b64(b'{not json')}.{payload}.{signature}")


def _no_token(forge: _Forge) -> Probe:
    return Probe(authorization=None, note="no Authorization header")


def _wrong_scheme(forge: _Forge) -> Probe:
    return Probe(authorization=f"Token {forge.mint()}", note="a valid token under scheme 'Token'")


def _empty_bearer(forge: _Forge) -> Probe:
    return Probe(authorization="Bearer", note="the scheme and no token")


CASES: tuple[Case, ...] = (
    Case("valid-token", "positive control: a valid token is accepted", _valid_control, Expect.ACCEPT,
         ChallengeRule.NONE),
    Case("alg-none", "alg none (unsigned token)", _alg_none),
    Case("hs256-with-public-key", "RS/HS confusion: HS256 keyed with the issuer's public key",
         _hs256_public_key),
    Case("embedded-jwk", "jwk header: token carries its own key", _embedded_jwk),
    Case("jku-header", "jku header: token names its own JWKS URL", _jku),
    Case("x5u-header", "x5u header: token names its own certificate URL", _x5u),
    Case("x5c-header", "x5c header: token carries its own certificate", _x5c),
    Case("unknown-kid", "kid not in the issuer's JWKS", _unknown_kid),
    Case("no-kid", "no kid while the JWKS has several keys", _no_kid, needs_several_keys=True),
    Case("bad-signature", "signature does not match", _bad_signature),
    Case("stripped-signature", "signature removed", _stripped_signature),
    Case("expired", "exp in the past", _expired),
    Case("not-yet-valid", "nbf in the future", _not_yet_valid),
    Case("iat-in-future", "iat in the future", _iat_in_future),
    Case("wrong-aud", "aud is another server", _wrong_aud),
    Case("aud-suffixed", "aud is this server's URL with a suffix", _aud_suffixed),
    Case("aud-array-without-server", "aud array without this server", _aud_array_without_server),
    Case("wrong-iss", "iss is not the trusted issuer", _wrong_iss),
    Case("missing-sub", "no sub claim", _missing_sub),
    Case("unknown-crit", "crit names an unknown header extension", _unknown_crit),
    Case("oversized-token", "token over 16 KiB", _oversized),
    Case("malformed-two-segments", "two segments instead of three", _two_segments),
    Case("malformed-base64", "payload segment is not base64url", _bad_base64),
    Case("malformed-json", "header segment is not JSON", _bad_json),
    Case("no-token", "no token at all", _no_token, challenge=ChallengeRule.NO_ERROR),
    Case("wrong-scheme", "valid token under a scheme other than Bearer", _wrong_scheme,
         challenge=ChallengeRule.BEARER),
    Case("empty-bearer", "Bearer scheme with an empty token", _empty_bearer, challenge=ChallengeRule.BEARER),
)  # fmt: skip


# --- running and judging ---------------------------------------------------------------------------


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


@contextmanager
def _attacker_host(attacker: _Attacker) -> Iterator[None]:
    served = start_in_thread(attacker.app(), bind_loopback())
    attacker.base_url = served.url
    try:
        yield
    finally:
        served.stop()


def _prepare(forge: _Forge, target: Target, cases: Sequence[Case], notes: list[str]) -> None:
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
    attacker = _Attacker.create()
    with (
        httpx.Client(timeout=target.timeout) as http,
        AdminClient(issuer_url, target.secret, timeout=target.timeout) as admin,
        _attacker_host(attacker),
    ):
        forge = _Forge(admin, target.resource, attacker)
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


def _run_case(case: Case, forge: _Forge, http: httpx.Client, target: Target) -> CaseResult:
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
