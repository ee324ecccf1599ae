"""The cases: what each defect is, how to forge it, and `CASES`, the battery in the order it runs."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from jwt.utils import base64url_decode

from harness.conformance.forging import Forge, b64, header, payload, segments
from harness.conformance.model import ChallengeRule, ConformanceSetupError, Expect, Probe

__all__ = ["CASES", "Case"]

_OVERSIZE_BYTES = 17 * 1024
_OTHER_AUDIENCE = "http://127.0.0.1:9/another-mcp-server/mcp"
_OTHER_ISSUER = "http://127.0.0.1:9/another-issuer"


@dataclass(frozen=True)
class Case:
    """One named defect: how to forge it and what a correct server does with it."""

    name: str
    title: str
    build: Callable[[Forge], Probe] = field(repr=False)
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
