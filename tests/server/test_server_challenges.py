"""Every way a token can be wrong gets a 401 with the right RFC 6750 challenge, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from server_support import JWKSHost, Keys, RunningServer, SigningKey, hosted_jwks, mint, running_server

from harness.conformance import initialize_request

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

_MAX_TOKEN_BYTES = 4096  # below uvicorn's 16 KiB header limit, so our own limit is what answers


@dataclass(frozen=True)
class Ctx:
    keys: Keys
    issuer: str
    audience: str

    def token(self, key: SigningKey | None = None, **options: Any) -> str:
        return mint(key or self.keys.rsa, issuer=self.issuer, audience=self.audience, **options)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            **overrides,
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(value: Any) -> str:
    return _b64(json.dumps(value).encode())


def _hs256_with_public_key(ctx: Ctx) -> str:
    """The classic RS/HS confusion: HMAC keyed with the RSA public key everyone can download."""
    secret = ctx.keys.rsa.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{_b64json(ctx.claims())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{_b64json(header)}.{_b64json(payload)}.{signature}"


def _signed_bytes(ctx: Ctx, payload: bytes) -> str:
    """A correctly signed JWS whose payload is not a JSON object."""
    return jwt.api_jws.encode(
        payload, ctx.keys.rsa.private_key, algorithm="RS256", headers={"kid": "rsa-1", "typ": "JWT"}
    )


def _tampered(ctx: Ctx) -> str:
    header, _, signature = ctx.token().split(".")
    return f"{header}.{_b64json(ctx.claims(sub='admin'))}.{signature}"


def _non_canonical_signature(token: str) -> str:
    """The same signature bytes spelt differently: unused low bits of the last character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = token[-1]
    return token[:-1] + alphabet[alphabet.index(last) | 1]


def _attacker_key() -> SigningKey:
    return SigningKey("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _with_own_jwk(ctx: Ctx) -> str:
    attacker = _attacker_key()
    return mint(attacker, issuer=ctx.issuer, audience=ctx.audience, header={"jwk": attacker.public_jwk()})


Case = Callable[[Ctx], str]

NOT_ALLOWED = "algorithm not allowed"
MISMATCH = "algorithm does not match the signing key"
OWN_KEY = "token-supplied keys are not accepted"
CRIT = "unsupported critical header"
MALFORMED = "malformed token"
OTHER_MCP = "http://127.0.0.1:1/mcp"


def _ago(seconds: int) -> int:
    return int(time.time()) - seconds


def _missing(claim: str) -> tuple[str, Case, str]:
    return f"missing-{claim}", lambda c: c.token(drop=(claim,)), f"missing {claim} claim"


def _swap_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


REJECTED: list[tuple[str, Case, str]] = [
    ("alg-none", lambda c: _unsigned({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, c.claims()), NOT_ALLOWED),
    ("alg-None", lambda c: _unsigned({"alg": "None", "typ": "JWT"}, c.claims()), NOT_ALLOWED),
    ("alg-missing", lambda c: _unsigned({"typ": "JWT", "kid": "rsa-1"}, c.claims(), "AAAA"), NOT_ALLOWED),
    ("hs256-rs-confusion", _hs256_with_public_key, NOT_ALLOWED),
    ("alg-not-listed", lambda c: _unsigned({"alg": "ES512", "typ": "JWT"}, c.claims(), "AAAA"), NOT_ALLOWED),
    ("rs256-on-ec-key", lambda c: c.token(c.keys.rsa, header={"kid": "ec-1"}), MISMATCH),
    ("es256-on-rsa-key", lambda c: c.token(c.keys.ec, header={"kid": "rsa-1"}), MISMATCH),
    ("eddsa-on-ec-key", lambda c: c.token(c.keys.ed, header={"kid": "ec-1"}), MISMATCH),
    ("jwk-header", _with_own_jwk, OWN_KEY),
    ("jku-header", lambda c: c.token(header={"jku": c.issuer + "/attacker.json"}), OWN_KEY),
    ("x5u-header", lambda c: c.token(header={"x5u": c.issuer + "/attacker.pem"}), OWN_KEY),
    ("x5c-header", lambda c: c.token(header={"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"]}), OWN_KEY),
    ("crit-unknown", lambda c: c.token(header={"crit": ["urn:example:x"], "urn:example:x": 1}), CRIT),
    ("crit-b64", lambda c: c.token(header={"crit": ["b64"], "b64": True}), CRIT),
    ("unknown-kid", lambda c: c.token(header={"kid": "no-such-key"}), "unknown signing key"),
    ("no-kid-several-keys", lambda c: c.token(header={"kid": None}), "token has no key id"),
    (
        "kid-not-string",
        lambda c: _unsigned({"alg": "RS256", "typ": "JWT", "kid": 7}, c.claims(), "AAAA"),
        MALFORMED,
    ),
    ("bad-signature", lambda c: c.token(c.keys.rsa_other), "bad signature"),
    ("stripped-signature", lambda c: _swap_segment(c.token(), 2, ""), "bad signature"),
    ("two-segments", lambda c: c.token().rsplit(".", 1)[0], MALFORMED),
    ("tampered-payload", _tampered, "bad signature"),
    ("weak-rsa-key", lambda c: c.token(c.keys.rsa_weak), "unusable signing key"),
    ("expired", lambda c: c.token(claims={"exp": _ago(120), "iat": _ago(600)}), "token expired"),
    ("nbf-future", lambda c: c.token(claims={"nbf": _ago(-120)}), "token not yet valid"),
    ("iat-future", lambda c: c.token(claims={"iat": _ago(-120)}), "token not yet valid"),
    ("aud-other", lambda c: c.token(claims={"aud": OTHER_MCP}), "wrong audience"),
    ("aud-array-without-us", lambda c: c.token(claims={"aud": [OTHER_MCP, "other"]}), "wrong audience"),
    ("aud-prefix", lambda c: c.token(claims={"aud": c.audience + "/more"}), "wrong audience"),
    ("aud-not-strings", lambda c: c.token(claims={"aud": [1, 2]}), "wrong audience"),
    ("iss-other", lambda c: c.token(claims={"iss": "http://127.0.0.1:1"}), "wrong issuer"),
    *[_missing(claim) for claim in ("iss", "sub", "aud", "exp", "iat")],
    ("exp-string", lambda c: c.token(claims={"exp": str(_ago(-300))}), "invalid exp claim"),
    ("exp-bool", lambda c: c.token(claims={"exp": True}), "invalid exp claim"),
    ("exp-nan", lambda c: c.token(claims={"exp": float("nan")}), "invalid exp claim"),
    ("exp-infinite", lambda c: c.token(claims={"exp": float("inf")}), "invalid exp claim"),
    ("nbf-string", lambda c: c.token(claims={"nbf": "0"}), "invalid nbf claim"),
    (
        "iss-not-string",
        lambda c: _signed_bytes(c, json.dumps(c.claims(iss=[c.issuer])).encode()),
        "wrong issuer",
    ),
    ("aud-mixed-types", lambda c: c.token(claims={"aud": [c.audience, 1]}), "wrong audience"),
    ("aud-empty", lambda c: c.token(claims={"aud": []}), "missing aud claim"),
    ("jti-number", lambda c: c.token(claims={"jti": 7}), "invalid jti claim"),
    (
        "b64-false",
        lambda c: _unsigned({"alg": "RS256", "typ": "JWT", "kid": "rsa-1", "b64": False}, c.claims(), "AA"),
        MALFORMED,
    ),
    ("signature-padded", lambda c: c.token() + "=", MALFORMED),
    ("signature-non-canonical", lambda c: _non_canonical_signature(c.token()), MALFORMED),
    ("sub-empty", lambda c: c.token(claims={"sub": ""}), "invalid sub claim"),
    ("sub-number", lambda c: c.token(claims={"sub": 42}), "invalid sub claim"),
    ("typ-missing", lambda c: c.token(header={"typ": None}), "unexpected token type"),
    ("typ-other", lambda c: c.token(header={"typ": "JOSE"}), "unexpected token type"),
    ("header-bad-base64", lambda c: _swap_segment(c.token(), 0, "%%%"), MALFORMED),
    ("header-bad-json", lambda c: _swap_segment(c.token(), 0, _b64(b"{nope")), MALFORMED),
    ("header-not-object", lambda c: _swap_segment(c.token(), 0, _b64json(["RS256"])), MALFORMED),
    ("payload-bad-base64", lambda c: _swap_segment(c.token(), 1, "%%%"), MALFORMED),
    ("payload-not-json", lambda c: _signed_bytes(c, b"not json"), MALFORMED),
    ("payload-not-object", lambda c: _signed_bytes(c, b"[1, 2]"), MALFORMED),
    ("not-a-jwt", lambda c: "not-a-jwt", MALFORMED),
    ("too-large", lambda c: c.token(claims={"pad": "x" * _MAX_TOKEN_BYTES}), "token too large"),
]

ACCEPTED: list[tuple[str, Case]] = [
    ("rs256-jwt", lambda c: c.token()),
    ("at+jwt", lambda c: c.token(header={"typ": "at+jwt"})),
    ("application/at+jwt", lambda c: c.token(header={"typ": "application/at+jwt"})),
    ("typ-case-insensitive", lambda c: c.token(header={"typ": "AT+JWT"})),
    ("es256", lambda c: c.token(c.keys.ec)),
    ("eddsa", lambda c: c.token(c.keys.ed)),
    ("ps256-on-rsa-key", lambda c: c.token(alg="PS256")),
    ("aud-array-with-us", lambda c: c.token(claims={"aud": ["http://127.0.0.1:1/other", c.audience]})),
    ("exp-within-leeway", lambda c: c.token(claims={"exp": int(time.time()) - 5})),
    ("nbf-within-leeway", lambda c: c.token(claims={"nbf": int(time.time()) + 5})),
]


@pytest.fixture(scope="module")
def matrix(keys: Keys) -> Iterator[tuple[JWKSHost, RunningServer]]:
    with (
        hosted_jwks(keys.rsa, keys.ec, keys.ed, keys.rsa_weak) as host,
        running_server(host, max_token_bytes=_MAX_TOKEN_BYTES) as server,
    ):
        yield host, server


@pytest.fixture(scope="module")
def ctx(keys: Keys, matrix: tuple[JWKSHost, RunningServer]) -> Ctx:
    _, server = matrix
    return Ctx(keys, server.issuer, server.resource_url)


def _post(server: RunningServer, authorization: list[str] | None) -> httpx.Response:
    headers = [("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json")]
    headers += [("Authorization", value) for value in authorization or []]
    return httpx.post(
        server.resource_url, headers=headers, json=initialize_request("challenge-test"), timeout=10
    )


def challenge_params(response: httpx.Response) -> dict[str, str]:
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def _metadata_url(server: RunningServer) -> str:
    return server.url + "/.well-known/oauth-protected-resource/mcp"


@pytest.mark.parametrize(
    ("case", "description"), [(c, d) for _, c, d in REJECTED], ids=[i for i, _, _ in REJECTED]
)
def test_bad_token_gets_invalid_token_challenge(
    ctx: Ctx, matrix: tuple[JWKSHost, RunningServer], case: Case, description: str
) -> None:
    _, server = matrix
    response = _post(server, [f"Bearer {case(ctx)}"])
    assert response.status_code == 401
    assert challenge_params(response) == {
        "error": "invalid_token",
        "error_description": description,
        "resource_metadata": _metadata_url(server),
    }
    assert response.json() == {"error": "invalid_token", "error_description": description}


@pytest.mark.parametrize("case", [c for _, c in ACCEPTED], ids=[i for i, _ in ACCEPTED])
def test_good_token_reaches_mcp(ctx: Ctx, matrix: tuple[JWKSHost, RunningServer], case: Case) -> None:
    _, server = matrix
    response = _post(server, [f"Bearer {case(ctx)}"])
    assert response.status_code == 200, response.text
    assert "www-authenticate" not in response.headers


def test_no_token_gets_challenge_without_error(matrix: tuple[JWKSHost, RunningServer]) -> None:
    _, server = matrix
    response = _post(server, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer resource_metadata="{_metadata_url(server)}"'
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("authorization", "description"),
    [
        (["Basic dXNlcjpwYXNzd29yZA=="], "expected a Bearer token"),
        (["Token abc.def.ghi"], "expected a Bearer token"),
        (["Bearer"], "malformed Bearer credentials"),
        (["Bearer a.b.c d.e.f"], "malformed Bearer credentials"),
        (["Bearer a.b.c", "Bearer d.e.f"], "more than one Authorization header"),
    ],
    ids=["basic", "token-scheme", "bearer-empty", "two-tokens", "two-headers"],
)
def test_malformed_authorization_gets_invalid_request(
    matrix: tuple[JWKSHost, RunningServer], authorization: list[str], description: str
) -> None:
    _, server = matrix
    response = _post(server, authorization)
    assert response.status_code == 401
    assert challenge_params(response) == {
        "error": "invalid_request",
        "error_description": description,
        "resource_metadata": _metadata_url(server),
    }


def test_valid_jwt_with_wrong_scheme_is_refused(ctx: Ctx, matrix: tuple[JWKSHost, RunningServer]) -> None:
    _, server = matrix
    response = _post(server, [f"Basic {ctx.token()}"])
    assert response.status_code == 401
    assert challenge_params(response)["error"] == "invalid_request"


def test_bearer_scheme_is_case_insensitive(ctx: Ctx, matrix: tuple[JWKSHost, RunningServer]) -> None:
    _, server = matrix
    assert _post(server, [f"bearer {ctx.token()}"]).status_code == 200


def test_protected_resource_metadata_is_served(matrix: tuple[JWKSHost, RunningServer]) -> None:
    host, server = matrix
    response = httpx.get(_metadata_url(server), timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "resource": server.resource_url,
        "authorization_servers": [host.url],
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-idfwd-server",
    }


def test_no_signing_keys_at_all_is_503_not_401(keys: Keys) -> None:
    with hosted_jwks(keys.rsa) as host, running_server(host) as server:
        host.failing = True
        token = mint(keys.rsa, issuer=host.url, audience=server.resource_url)
        response = _post(server, [f"Bearer {token}"])
    assert response.status_code == 503
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "signing keys unavailable",
    }
    assert "retry-after" in response.headers
