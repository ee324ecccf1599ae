"""Contract C5: `/admin/mint` signs `raw_header` / `raw_claims` verbatim, duplicate members included."""

from __future__ import annotations

import base64

import jwt
import pytest
from issuer_support import AUDIENCE, RunningIssuer

from fake_enterprise import AdminAPIError, AdminClient


def _segments(token: str) -> tuple[bytes, bytes]:
    def decode(segment: str) -> bytes:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))

    header, payload, _ = token.split(".")
    return decode(header), decode(payload)


def _verified_payload(admin: AdminClient, token: str, alg: str) -> bytes:
    """The payload bytes, once the signature checks against the issuer's published key."""
    jwks = admin.jwks()
    key = jwt.PyJWKSet.from_dict(jwks)[jwks["keys"][0]["kid"]].key
    return jwt.api_jws.PyJWS().decode(token, key, algorithms=[alg])


def test_a_payload_with_two_subs_is_signed_with_both(admin: AdminClient) -> None:
    raw_claims = f'{{"iss":"x","sub":"alice","aud":"{AUDIENCE}","exp":4102444800,"sub":"mallory"}}'
    token = admin.mint(raw_claims=raw_claims)
    _, payload = _segments(token)
    assert payload == raw_claims.encode()
    assert payload.count(b'"sub"') == 2
    assert _verified_payload(admin, token, "RS256") == raw_claims.encode()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"  # the default header, current key


def test_a_raw_header_is_signed_verbatim_per_its_last_alg(admin: AdminClient) -> None:
    kid = admin.jwks()["keys"][0]["kid"]
    raw_header = f'{{"alg":"none","kid":"{kid}","typ":"JWT","alg":"RS256"}}'
    token = admin.mint({"sub": "alice", "aud": AUDIENCE}, raw_header=raw_header)
    header, _ = _segments(token)
    assert header == raw_header.encode()
    assert token.split(".")[2], "signed with RS256, the alg json.loads keeps"
    _verified_payload(admin, token, "RS256")


def test_raw_texts_with_hs256_and_none(admin: AdminClient) -> None:
    key = "k" * 32
    hs = admin.mint(raw_header='{"alg":"HS256","typ":"JWT"}', raw_claims='{"sub":"a"}', hmac_key=key)
    assert jwt.decode(hs, key, algorithms=["HS256"]) == {"sub": "a"}
    unsigned = admin.mint(raw_header='{"alg":"none"}', raw_claims="[1, 2]")
    assert unsigned.endswith(".") and _segments(unsigned)[1] == b"[1, 2]"


def test_huge_and_infinite_exp_in_raw_claims_still_mint(admin: AdminClient) -> None:
    for raw in ('{"sub":"a","exp":' + "9" * 400 + "}", '{"sub":"a","exp":1e400}'):
        assert _segments(admin.mint(raw_claims=raw))[1] == raw.encode()


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"claims": {"sub": "a"}, "raw_claims": '{"sub":"a"}'}, "raw_claims replaces claims"),
        ({"raw_claims": '{"sub":"a"}', "ttl": 60}, "raw_claims replaces claims"),
        ({"claims": {}, "header": {"alg": "RS256"}, "raw_header": '{"alg":"RS256"}'}, "raw_header replaces"),
        ({"raw_claims": "{not json"}, "raw_claims is not JSON"),
        ({"raw_claims": "[" * 5000}, "raw_claims is not JSON"),
        ({"claims": {}, "raw_header": '["RS256"]'}, "raw_header must be a JSON object"),
        ({"claims": {}, "raw_header": '{"alg":7}'}, "alg must be a string"),
        ({"raw_claims": "x" * (16 * 1024 + 1)}, "raw_claims"),
        ({"raw_claims": {"sub": "a"}}, "raw_claims"),
    ],
    ids=[
        "claims-and-raw",
        "ttl-and-raw",
        "header-and-raw",
        "not-json",
        "too-deep",
        "header-array",
        "alg-number",
        "too-long",
        "not-a-string",
    ],
)
def test_bad_raw_mint_requests_are_400(module_issuer: RunningIssuer, fields: dict, fragment: str) -> None:
    with module_issuer.admin() as admin, pytest.raises(AdminAPIError) as refused:
        admin._admin("POST", "/admin/mint", fields)
    assert (refused.value.status, refused.value.error) == (400, "invalid_request")
    assert fragment in refused.value.message
