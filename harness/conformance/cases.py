"""The cases: what each defect is, how to forge it, and `CASES`, the battery in the order it runs."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jwt.utils import base64url_decode

from harness.conformance.forging import Forge, b64, header, new_subject, payload, segments
from harness.conformance.model import ChallengeRule, ConformanceSetupError, Expect, Probe, Requirement

__all__ = ["CASES", "Case"]

_OVERSIZE_BYTES = 17 * 1024
_OTHER_AUDIENCE = "http://127.0.0.1:9/another-mcp-server/mcp"
_OTHER_ISSUER = "http://127.0.0.1:9/another-issuer"
_HUGE = 10**400  # a NumericDate no float or datetime holds: OverflowError for a careless verifier
_DAY = 24 * 3600
_UNAUTHORIZED = frozenset({401})
# The HTTP layer (not the token check) may turn away an oversized header.
_TOO_LARGE = frozenset({400, 401, 413, 431})
# A request on another principal's session: the SDK answers 404 (as for an unknown session).
_NOT_YOUR_SESSION = frozenset({400, 401, 403, 404})


@dataclass(frozen=True)
class Case:
    """One named defect: how to forge it, what a correct server does with it, and who says so.

    `source` names the RFC section or MCP spec clause behind the expectation; for a case of
    `Requirement.STRICT` it says why no RFC requires the refusal. `refused_with` lists the
    statuses that count as a proper refusal (401 for a token the server must not trust).
    """

    name: str
    title: str
    source: str
    build: Callable[[Forge], Probe] = field(repr=False)
    expect: Expect = Expect.REFUSE
    challenge: ChallengeRule = ChallengeRule.INVALID_TOKEN
    requirement: Requirement = Requirement.MUST
    refused_with: frozenset[int] = _UNAUTHORIZED
    needs_several_keys: bool = False

    @property
    def expected_status(self) -> str:
        if self.expect is Expect.ACCEPT:
            return "2xx"
        return "/".join(str(status) for status in sorted(self.refused_with))

    @property
    def expected_challenge(self) -> str:
        return {
            ChallengeRule.INVALID_TOKEN: "Bearer error=invalid_token",
            ChallengeRule.NO_ERROR: "Bearer (no error)",
            ChallengeRule.BEARER: "Bearer",
            ChallengeRule.NONE: "-",
        }[self.challenge]


def _bearer(token: str, note: str = "") -> Probe:
    return Probe(authorization=f"Bearer {token}", note=note)


def _now() -> int:
    return int(time.time())


def _valid_control(forge: Forge) -> Probe:
    return _bearer(forge.valid_token)


def _alg_none(forge: Forge) -> Probe:
    return _bearer(forge.mint(header={"alg": "none"}), "issuer's kid, empty signature")


def _hs256_public_key(forge: Forge) -> Probe:
    token = forge.mint(header={"alg": "HS256"}, hmac_key=forge.issuer_public_pem())
    return _bearer(token, "HMAC key: the issuer's public key as PEM, issuer's kid")


def _embedded_jwk(forge: Forge) -> Probe:
    attacker = forge.attacker
    header = {"typ": "JWT", "kid": attacker.kid, "jwk": attacker.jwk}
    return _bearer(attacker.sign(forge.fresh_claims(), header), "signed with the key it embeds")


def _jku(forge: Forge) -> Probe:
    attacker = forge.attacker
    header = {"typ": "JWT", "kid": attacker.kid, "jku": f"{attacker.base_url}/jwks.json"}
    return _bearer(attacker.sign(forge.fresh_claims(), header), "jku points at an attacker JWKS")


def _x5u(forge: Forge) -> Probe:
    attacker = forge.attacker
    header = {"typ": "JWT", "kid": attacker.kid, "x5u": f"{attacker.base_url}/cert.pem"}
    return _bearer(attacker.sign(forge.fresh_claims(), header), "x5u points at an attacker certificate")


def _x5c(forge: Forge) -> Probe:
    attacker = forge.attacker
    header = {"typ": "JWT", "kid": attacker.kid, "x5c": [base64.b64encode(attacker.cert_der).decode()]}
    return _bearer(attacker.sign(forge.fresh_claims(), header), "signed with the certificate it embeds")


def _unknown_kid(forge: Forge) -> Probe:
    return _bearer(forge.mint(header={"kid": f"unknown-{uuid.uuid4().hex[:12]}"}), "issuer-signed")


def _no_kid(forge: Forge) -> Probe:
    token = forge.mint(header={"kid": None})
    if "kid" in header(token):
        raise ConformanceSetupError("the issuer's /admin/mint cannot leave out the kid header")
    keys = len(forge.jwks.get("keys", []))
    return _bearer(token, f"issuer-signed; the JWKS has {keys} keys")


def _bad_signature(forge: Forge) -> Probe:
    header, payload, signature = segments(forge.mint())
    raw = bytearray(base64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return _bearer(f"{header}.{payload}.{b64(bytes(raw))}", "one bit of the signature flipped")


def _stripped_signature(forge: Forge) -> Probe:
    header, payload, _ = segments(forge.mint())
    return _bearer(f"{header}.{payload}.")


def _expired(forge: Forge) -> Probe:
    now = _now()
    return _bearer(forge.mint({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}), "exp 1 h ago")


def _not_yet_valid(forge: Forge) -> Probe:
    now = _now()
    return _bearer(forge.mint({"iat": now, "nbf": now + 3600, "exp": now + 7200}), "nbf in 1 h")


def _iat_in_future(forge: Forge) -> Probe:
    now = _now()
    return _bearer(forge.mint({"iat": now + 3600, "nbf": now, "exp": now + 7200}), "iat in 1 h")


def _wrong_aud(forge: Forge) -> Probe:
    return _bearer(forge.mint({"aud": _OTHER_AUDIENCE}), f"aud={_OTHER_AUDIENCE}")


def _aud_suffixed(forge: Forge) -> Probe:
    audience = f"{forge.audience}-evil"
    return _bearer(forge.mint({"aud": audience}), f"aud={audience}")


def _aud_array_without_server(forge: Forge) -> Probe:
    audiences = [_OTHER_AUDIENCE, f"{_OTHER_AUDIENCE}/2"]
    return _bearer(forge.mint({"aud": audiences}), "aud=[two other servers]")


def _wrong_iss(forge: Forge) -> Probe:
    return _bearer(forge.mint({"iss": _OTHER_ISSUER}), f"iss={_OTHER_ISSUER}")


def _missing_sub(forge: Forge) -> Probe:
    token = forge.mint({"sub": None})
    if "sub" in payload(token):
        raise ConformanceSetupError("the issuer's /admin/mint cannot leave out the sub claim")
    return _bearer(token)


def _unknown_crit(forge: Forge) -> Probe:
    extension = "urn:mcp-idfwd:conformance"
    return _bearer(forge.mint(header={"crit": [extension], extension: True}), f"crit=[{extension}]")


def _oversized(forge: Forge) -> Probe:
    token = forge.mint({"padding": "x" * _OVERSIZE_BYTES})
    return _bearer(token, f"{len(token)} bytes, issuer-signed")


def _two_segments(forge: Forge) -> Probe:
    header, payload, _ = segments(forge.mint())
    return _bearer(f"{header}.{payload}")


def _bad_base64(forge: Forge) -> Probe:
    header, _, signature = segments(forge.mint())
    return _bearer(f"{header}.%%not*base64%%.{signature}")


def _bad_json(forge: Forge) -> Probe:
    _, payload, signature = segments(forge.mint())
    return _bearer(f"{b64(b'{not json')}.{payload}.{signature}")


def _no_token(forge: Forge) -> Probe:
    return Probe(authorization=None, note="no Authorization header")


def _wrong_scheme(forge: Forge) -> Probe:
    return Probe(authorization=f"Token {forge.mint()}", note="a valid token under scheme 'Token'")


def _empty_bearer(forge: Forge) -> Probe:
    return Probe(authorization="Bearer", note="the scheme and no token")


def _cross_tenant_session(forge: Forge) -> Probe:
    acme_alice = forge.mint({"sub": new_subject(), "tenant_id": "acme", "preferred_username": "alice"})
    globex_alice = forge.mint({"sub": new_subject(), "tenant_id": "globex", "preferred_username": "alice"})
    return Probe(
        authorization=f"Bearer {globex_alice}",
        note="globex/alice's token (other sub, same preferred_username) on acme/alice's session",
        session_owner=f"Bearer {acme_alice}",
    )


def _huge_exp(forge: Forge) -> Probe:
    return _bearer(forge.mint({"exp": _HUGE}), "exp=10**400")


def _huge_nbf(forge: Forge) -> Probe:
    return _bearer(forge.mint({"nbf": _HUGE}), "nbf=10**400")


def _huge_iat(forge: Forge) -> Probe:
    return _bearer(forge.mint({"iat": _HUGE}), "iat=10**400")


def _raw_claims(forge: Forge, **members: Any) -> dict[str, Any]:
    now = _now()
    return {"iss": forge.admin.base_url, "iat": now, "nbf": now, "exp": now + 300,
            "jti": uuid.uuid4().hex, **forge.default_claims(), **members}  # fmt: skip


def _raw_header(forge: Forge) -> dict[str, Any]:
    valid = header(forge.valid_token)
    return {name: valid[name] for name in ("alg", "kid", "typ") if name in valid}


def _exp_beyond_double(forge: Forge) -> Probe:
    claims = json.dumps(_raw_claims(forge, exp=0))
    # JSON allows 1e400; a double does not (inf), and int(inf) raises OverflowError.
    raw_claims = claims.replace('"exp": 0', '"exp": 1e400')
    return _bearer(forge.mint_raw(json.dumps(_raw_header(forge)), raw_claims), "exp=1e400 (JSON text)")


def _duplicate_header_alg(forge: Forge) -> Probe:
    members = _raw_header(forge)
    alg = members.pop("alg")
    text = json.dumps({"alg": "none", **members})
    raw_header = f'{text[:-1]}, "alg": {json.dumps(alg)}}}'
    token = forge.mint_raw(raw_header, json.dumps(_raw_claims(forge)))
    return _bearer(token, f'header {{"alg": "none", ..., "alg": "{alg}"}}, signed {alg}')


def _duplicate_claim_sub(forge: Forge) -> Probe:
    claims = json.dumps(_raw_claims(forge))
    raw_claims = f'{claims[:-1]}, "sub": {json.dumps(new_subject())}}}'
    token = forge.mint_raw(json.dumps(_raw_header(forge)), raw_claims)
    return _bearer(token, "two sub members, issuer-signed")


def _long_lifetime(forge: Forge) -> Probe:
    now = _now()
    token = forge.mint({"iat": now, "nbf": now, "exp": now + _DAY + 3600})
    return _bearer(token, "exp - iat = 25 h")


_RFC8725_ALG = "RFC 8725 §2.1, §3.1 (the verifier, not the token, picks the algorithm)"
_FOREIGN_KEY = "RFC 7515 §6, RFC 8725 §3.10 (trust only keys from the issuer's JWKS)"
_SIGNATURE = "RFC 7515 §5.2 (the signature must validate with a trusted key)"
_AUDIENCE = "RFC 8725 §3.9, RFC 8707 §2; MCP authorization, Token Handling (tokens issued for this server)"
_MALFORMED = "RFC 7515 §5.2, §7.1 (a JWS that does not parse is invalid)"
_TIME = "RFC 7519 §2 NumericDate; a refusal is a 401, never a 5xx (RFC 6750 §3.1)"
_STRICT_TIME = f"{_TIME}; no RFC bounds exp, the strict profile refuses it"
_DUPLICATES = "reject duplicate members, or read only the lexically last one"

CASES: tuple[Case, ...] = (
    Case("valid-token", "positive control: a valid token is accepted",
         "MCP authorization, Access Token Usage (a valid token for this server is served)",
         _valid_control, Expect.ACCEPT, ChallengeRule.NONE),
    Case("alg-none", "alg none (unsigned token)", f"{_RFC8725_ALG}; RFC 7518 §3.6", _alg_none),
    Case("hs256-with-public-key", "RS/HS confusion: HS256 keyed with the issuer's public key", _RFC8725_ALG,
         _hs256_public_key),
    Case("embedded-jwk", "jwk header: token carries its own key", f"RFC 7515 §4.1.3; {_FOREIGN_KEY}",
         _embedded_jwk),
    Case("jku-header", "jku header: token names its own JWKS URL", f"RFC 7515 §4.1.2; {_FOREIGN_KEY}", _jku),
    Case("x5u-header", "x5u header: token names its own certificate URL", f"RFC 7515 §4.1.5; {_FOREIGN_KEY}",
         _x5u),
    Case("x5c-header", "x5c header: token carries its own certificate", f"RFC 7515 §4.1.6; {_FOREIGN_KEY}",
         _x5c),
    Case("unknown-kid", "kid not in the issuer's JWKS", f"RFC 7515 §4.1.4; {_SIGNATURE}", _unknown_kid),
    Case("no-kid", "no kid while the JWKS has several keys",
         "RFC 7515 §4.1.4 makes kid optional: a verifier may try each key; the strict profile needs a kid",
         _no_kid, requirement=Requirement.STRICT, needs_several_keys=True),
    Case("bad-signature", "signature does not match", f"{_SIGNATURE}; RFC 8725 §3.3", _bad_signature),
    Case("stripped-signature", "signature removed", f"{_SIGNATURE}; {_RFC8725_ALG}", _stripped_signature),
    Case("expired", "exp in the past",
         "RFC 7519 §4.1.4; MCP authorization, Token Handling (invalid or expired tokens get 401)", _expired),
    Case("not-yet-valid", "nbf in the future", "RFC 7519 §4.1.5", _not_yet_valid),
    Case("iat-in-future", "iat in the future",
         "RFC 7519 §4.1.6 makes iat informational: no RFC or MCP clause asks to refuse a future iat",
         _iat_in_future, requirement=Requirement.STRICT),
    Case("wrong-aud", "aud is another server", f"RFC 7519 §4.1.3; {_AUDIENCE}", _wrong_aud),
    Case("aud-suffixed", "aud is this server's URL with a suffix", _AUDIENCE, _aud_suffixed),
    Case("aud-array-without-server", "aud array without this server", _AUDIENCE, _aud_array_without_server),
    Case("wrong-iss", "iss is not the trusted issuer", "RFC 7519 §4.1.1, RFC 8725 §3.8", _wrong_iss),
    Case("missing-sub", "no sub claim", "RFC 9068 §2.2, §4 (sub is required in a JWT access token)",
         _missing_sub),
    Case("unknown-crit", "crit names an unknown header extension", "RFC 7515 §4.1.11", _unknown_crit),
    Case("oversized-token", "token over 16 KiB",
         "no RFC or MCP clause limits a token's size (RFC 6585 §5 lets the HTTP layer answer 431)",
         _oversized, requirement=Requirement.STRICT, refused_with=_TOO_LARGE),
    Case("malformed-two-segments", "two segments instead of three", _MALFORMED, _two_segments),
    Case("malformed-base64", "payload segment is not base64url", f"{_MALFORMED}; RFC 7515 §2", _bad_base64),
    Case("malformed-json", "header segment is not JSON", _MALFORMED, _bad_json),
    Case("no-token", "no token at all",
         "RFC 6750 §3, §3.1 (no error code without a token); MCP authorization, Protected Resource "
         "Metadata Discovery (resource_metadata)", _no_token, challenge=ChallengeRule.NO_ERROR),
    Case("wrong-scheme", "valid token under a scheme other than Bearer", "RFC 6750 §2.1, §3", _wrong_scheme,
         challenge=ChallengeRule.BEARER),
    Case("empty-bearer", "Bearer scheme with an empty token", "RFC 6750 §2.1 (b64token is not empty), §3",
         _empty_bearer, challenge=ChallengeRule.BEARER),
    Case("cross-tenant-session", "another tenant's same-named user on an existing session",
         "MCP security best practices, Session Hijacking (a session is bound to its user, never "
         "authenticates); MCP authorization, Access Token Usage (every request is authorized)",
         _cross_tenant_session, challenge=ChallengeRule.BEARER, refused_with=_NOT_YOUR_SESSION),
    Case("huge-exp", "exp = 10**400", _STRICT_TIME, _huge_exp, requirement=Requirement.STRICT),
    Case("huge-nbf", "nbf = 10**400", f"RFC 7519 §4.1.5; {_TIME}", _huge_nbf),
    Case("huge-iat", "iat = 10**400", f"RFC 7519 §4.1.6 makes iat informational; {_TIME}", _huge_iat,
         requirement=Requirement.STRICT),
    Case("exp-beyond-double", "exp = 1e400 (no double holds it)", _STRICT_TIME, _exp_beyond_double,
         requirement=Requirement.STRICT),
    Case("duplicate-header-alg", 'duplicate alg in the header ("none", then the real one)',
         f"RFC 7515 §4 ({_DUPLICATES}); the strict profile rejects them (RFC 8725 §3.1)",
         _duplicate_header_alg, requirement=Requirement.STRICT),
    Case("duplicate-claim-sub", "two sub members in the payload",
         f"RFC 7519 §4 ({_DUPLICATES}); the strict profile rejects them", _duplicate_claim_sub,
         requirement=Requirement.STRICT),
    Case("long-lifetime", "exp - iat over 24 h",
         "no RFC bounds a token's lifetime; the strict profile refuses over 24 h (max_token_lifetime)",
         _long_lifetime, requirement=Requirement.STRICT),
)  # fmt: skip
