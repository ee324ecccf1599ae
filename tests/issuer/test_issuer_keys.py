"""Discovery, JWKS and the key ring: every alg verifies, rotation never opens a verification gap."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from issuer_support import AUDIENCE, FakeClock, RunningIssuer, StartIssuer

from fake_enterprise import AdminClient

ALL_ALGS = ["RS256", "ES256", "EdDSA"]


def _b64url_json(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _kids(admin: AdminClient) -> list[str]:
    return [key["kid"] for key in admin.jwks()["keys"]]


def _decode(admin: AdminClient, token: str, **options: Any) -> dict[str, Any]:
    keys = jwt.PyJWKSet.from_dict(admin.jwks())
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.decode(token, keys[kid].key, algorithms=ALL_ALGS, audience=AUDIENCE, **options)


def test_discovery_document(module_issuer: RunningIssuer) -> None:
    response = httpx.get(module_issuer.url + "/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == module_issuer.url
    assert doc["jwks_uri"] == module_issuer.url + "/.well-known/jwks.json"
    assert doc["issue_token_endpoint"] == module_issuer.url + "/inner/api/mcp/issue-token"
    assert set(doc["id_token_signing_alg_values_supported"]) == {*ALL_ALGS, "Ed25519"}
    assert "max-age" in response.headers["cache-control"]


def test_jwks_is_cacheable_for_the_configured_time(start_issuer: StartIssuer) -> None:
    issuer = start_issuer(jwks_max_age=17)
    response = httpx.get(issuer.url + "/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=17"
    (key,) = response.json()["keys"]
    assert {key["kty"], key["alg"], key["use"]} == {"RSA", "RS256", "sig"}
    assert "d" not in key and "p" not in key
    thumbprint_input = json.dumps({"e": key["e"], "kty": "RSA", "n": key["n"]}, separators=(",", ":"))
    digest = base64.urlsafe_b64encode(hashlib.sha256(thumbprint_input.encode()).digest()).rstrip(b"=")
    assert key["kid"] == digest.decode()


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_tokens_of_every_alg_verify_with_pyjwkclient(start_issuer: StartIssuer, alg: str) -> None:
    issuer = start_issuer(alg=alg)
    with issuer.admin() as admin:
        admin.create_user("acme", "alice")
        admin.grant("acme", "alice")
        token = admin.issue_token("acme", "alice", AUDIENCE)["token"]
    signing_key = jwt.PyJWKClient(issuer.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=[alg], audience=AUDIENCE, issuer=issuer.url)
    assert claims["preferred_username"] == "alice"
    assert jwt.get_unverified_header(token)["alg"] == alg


def test_a_token_signed_before_a_rotation_still_verifies_after_it(issuer: RunningIssuer) -> None:
    with issuer.admin() as admin:
        admin.create_user("acme", "alice")
        admin.grant("acme", "alice")
        old_token = admin.issue_token("acme", "alice", AUDIENCE)["token"]
        old_kid = jwt.get_unverified_header(old_token)["kid"]
        new_kid = admin.rotate_keys()
        assert new_kid != old_kid
        assert _kids(admin) == [new_kid, old_kid]
        assert _decode(admin, old_token)["preferred_username"] == "alice"
        new_token = admin.issue_token("acme", "alice", AUDIENCE)["token"]
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid
        assert _decode(admin, new_token)["preferred_username"] == "alice"


def test_rotation_can_change_the_algorithm(issuer: RunningIssuer) -> None:
    with issuer.admin() as admin:
        admin.create_user("acme", "alice")
        admin.grant("acme", "alice")
        rsa_token = admin.issue_token("acme", "alice", AUDIENCE)["token"]
        for alg in ("ES256", "EdDSA"):
            kid = admin.rotate_keys(alg)
            token = admin.issue_token("acme", "alice", AUDIENCE)["token"]
            assert jwt.get_unverified_header(token) == {"alg": alg, "kid": kid, "typ": "JWT"}
            assert _decode(admin, token)["preferred_username"] == "alice"
        assert _decode(admin, rsa_token)["preferred_username"] == "alice"
        assert [key["alg"] for key in admin.jwks()["keys"]] == ["EdDSA", "ES256", "RS256"]


def test_retired_keys_leave_the_jwks_once_their_tokens_expired(start_issuer: StartIssuer) -> None:
    clock = FakeClock()
    issuer = start_issuer(clock=clock, token_ttl=300, retired_key_grace=60)
    with issuer.admin() as admin:
        admin.create_user("acme", "alice")
        admin.grant("acme", "alice")
        first = admin.issue_token("acme", "alice", AUDIENCE)
        first_kid = jwt.get_unverified_header(first["token"])["kid"]
        unused_kid = admin.rotate_keys()
        current_kid = admin.rotate_keys()
        assert _kids(admin) == [current_kid, unused_kid, first_kid]
        clock.now += 60
        assert _kids(admin) == [current_kid, first_kid], "a key that signed nothing goes after the grace"
        clock.now = first["expires_at"] + 59
        assert _kids(admin) == [current_kid, first_kid], "a token verified with leeway still needs its key"
        clock.now = first["expires_at"] + 61
        assert _kids(admin) == [current_kid]


def test_a_long_lived_minted_token_keeps_its_key_for_at_most_the_retention(start_issuer: StartIssuer) -> None:
    clock = FakeClock()
    issuer = start_issuer(clock=clock, retired_key_grace=0, max_key_retention=3600)
    with issuer.admin() as admin:
        token = admin.mint({"sub": "x", "exp": int(clock.now) + 10 * 86_400})
        kid = jwt.get_unverified_header(token)["kid"]
        admin.rotate_keys()
        clock.now += 3599
        assert kid in _kids(admin)
        clock.now += 2
        assert kid not in _kids(admin)


def test_rotation_under_load_never_leaves_a_token_unverifiable(start_issuer: StartIssuer) -> None:
    # No grace: a retired key stays published only because a live token still needs it.
    issuer = start_issuer(retired_key_grace=0)
    with issuer.admin() as admin:
        admin.create_user("acme", "alice")
        admin.grant("acme", "alice")
    stop = threading.Event()
    failures: list[BaseException] = []

    def rotate() -> None:
        with issuer.admin() as rotator:
            while not stop.is_set():
                try:
                    rotator.rotate_keys("ES256")
                except BaseException as exc:  # reported by the main thread
                    failures.append(exc)
                    return

    rotator = threading.Thread(target=rotate)
    rotator.start()
    try:
        with issuer.admin() as admin:
            for _ in range(10):
                token = admin.issue_token("acme", "alice", AUDIENCE)["token"]
                # The JWKS fetched right after issuance must already verify the token.
                assert _decode(admin, token)["preferred_username"] == "alice"
    finally:
        stop.set()
        rotator.join()
    assert not failures


def test_mint_overlays_claims_and_header_on_the_defaults(module_issuer: RunningIssuer) -> None:
    with module_issuer.admin() as admin:
        token = admin.mint(
            {"sub": "mallory", "aud": AUDIENCE, "custom": [1, 2], "jti": None},
            header={"typ": "at+jwt", "x-test": True},
            ttl=30,
        )
        header = jwt.get_unverified_header(token)
        assert header["typ"] == "at+jwt" and header["x-test"] is True
        claims = _decode(admin, token, issuer=module_issuer.url)
    assert claims["sub"] == "mallory"
    assert claims["custom"] == [1, 2]
    assert "jti" not in claims
    assert claims["exp"] - claims["iat"] == 30


def test_mint_can_make_expired_and_misaddressed_tokens(module_issuer: RunningIssuer) -> None:
    with module_issuer.admin() as admin:
        expired = admin.mint({"aud": AUDIENCE}, ttl=-120)
        with pytest.raises(jwt.ExpiredSignatureError):
            _decode(admin, expired)
        assert _decode(admin, expired, options={"verify_exp": False})["aud"] == AUDIENCE
        elsewhere = admin.mint({"aud": "http://127.0.0.1:1/other"})
        with pytest.raises(jwt.InvalidAudienceError):
            _decode(admin, elsewhere)
        no_exp = admin.mint({"aud": AUDIENCE, "exp": None})
        with pytest.raises(jwt.MissingRequiredClaimError):
            _decode(admin, no_exp, options={"require": ["exp"]})
        unknown_kid = admin.mint({"aud": AUDIENCE}, header={"kid": "no-such-key"})
        assert "no-such-key" not in _kids(admin)
        assert jwt.get_unverified_header(unknown_kid)["kid"] == "no-such-key"


def test_mint_alg_none_yields_an_unsigned_token(module_issuer: RunningIssuer) -> None:
    with module_issuer.admin() as admin:
        token = admin.mint({"sub": "x"}, header={"alg": "none"})
    header_b64, payload_b64, signature = token.split(".")
    assert signature == ""
    assert _b64url_json(header_b64)["alg"] == "none"
    assert _b64url_json(payload_b64)["sub"] == "x"


def test_mint_hs256_with_the_public_key_builds_a_confusion_token(module_issuer: RunningIssuer) -> None:
    with module_issuer.admin() as admin:
        (jwk,) = admin.jwks()["keys"]
        public_key = jwt.PyJWK(jwk).key
        pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        token = admin.mint({"sub": "x"}, header={"alg": "HS256"}, hmac_key=pem)
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert signature == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"])


def test_mint_other_rsa_algs_with_the_rsa_key(module_issuer: RunningIssuer) -> None:
    with module_issuer.admin() as admin:
        for alg in ("RS384", "PS256"):
            token = admin.mint({"aud": AUDIENCE}, header={"alg": alg})
            keys = jwt.PyJWKSet.from_dict(admin.jwks())
            kid = jwt.get_unverified_header(token)["kid"]
            assert jwt.decode(token, keys[kid].key, algorithms=[alg], audience=AUDIENCE)["aud"] == AUDIENCE
