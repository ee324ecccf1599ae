"""Which JOSE libraries verify the issuer's tokens, per signing algorithm; docs/interop.md states it.

Each peer verifies a real token from a real issuer (`RS256`, `ES256`, `EdDSA` and RFC 9864's
`Ed25519`) with the public key from the issuer's JWKS: first as the library does by default,
then, if that refuses, with the token's alg allowed explicitly. The measured table must equal the
one in docs/interop.md, so the document says what the libraries installed here actually do. A
peer that is not installed is skipped (`pip install -e ".[interop]"`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from fake_enterprise import SIGNING_ALGORITHMS
from fake_mcp_server import JWKSTokenVerifier, TokenRejected, VerifierSettings
from harness.stack import LocalStack, StackSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "interop.md"
AUDIENCE = "https://mcp.example/mcp"

VERIFIES = "verifies"
WHEN_ALLOWED = "verifies if the alg is allowed explicitly"
REFUSES = "refuses"

# A peer verifies (token, public JWK, allowed algs or None for its default) or raises.
Verify = Callable[[str, dict[str, Any], list[str] | None], None]


def _pyjwt(token: str, key: dict[str, Any], algorithms: list[str] | None) -> None:
    # PyJWT has no default: `algorithms` is required, so its default is the token's alg.
    jwt.decode(token, jwt.PyJWK(key), algorithms=algorithms or [key["alg"]], audience=AUDIENCE)


def _joserfc(token: str, key: dict[str, Any], algorithms: list[str] | None) -> None:
    from joserfc import jwt as joserfc_jwt
    from joserfc.jwk import import_key

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns that EdDSA is deprecated (RFC 9864)
        decoded = joserfc_jwt.decode(token, import_key(key), algorithms=algorithms)
    joserfc_jwt.JWTClaimsRegistry(aud={"essential": True, "value": AUDIENCE}).validate(decoded.claims)


def _authlib(token: str, key: dict[str, Any], algorithms: list[str] | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # authlib.jose says it is moving to joserfc
        from authlib.jose import JsonWebKey, JsonWebToken
        from authlib.jose import jwt as authlib_jwt

        decoder = authlib_jwt if algorithms is None else JsonWebToken(algorithms)
        claims = decoder.decode(token, JsonWebKey.import_key(key))
        claims.validate()
    assert claims["aud"] == AUDIENCE


def _jwcrypto(token: str, key: dict[str, Any], algorithms: list[str] | None) -> None:
    from jwcrypto import jwk as jwcrypto_jwk
    from jwcrypto import jwt as jwcrypto_jwt

    jwcrypto_jwt.JWT(
        jwt=token,
        key=jwcrypto_jwk.JWK(**key),
        algs=algorithms,
        check_claims={"aud": AUDIENCE},
        expected_type="JWS",
    )


def _ours(token: str, key: dict[str, Any], algorithms: list[str] | None) -> None:
    # JWKSTokenVerifier over the same key, served as a one-key JWKS; it has its defaults only.
    if algorithms is not None:
        raise TokenRejected("no opt-in: the default is the only configuration measured")

    def jwks(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": [key]})

    async def verify() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(jwks))
        settings = VerifierSettings(audience=AUDIENCE, jwks_url="https://idp.example/jwks.json")
        async with client, JWKSTokenVerifier(settings, http_client=client) as verifier:
            await verifier.verify(token)

    asyncio.run(verify())


PEERS: dict[str, tuple[str | None, Verify]] = {
    "mcp-idfwd JWKSTokenVerifier": (None, _ours),
    "PyJWT": ("jwt", _pyjwt),
    "joserfc": ("joserfc", _joserfc),
    "Authlib": ("authlib", _authlib),
    "jwcrypto": ("jwcrypto", _jwcrypto),
}


def _outcome(verify: Verify, token: str, key: dict[str, Any]) -> str:
    try:
        verify(token, key, None)
        return VERIFIES
    except Exception:  # any refusal counts; which one is the library's business
        pass
    try:
        verify(token, key, [key["alg"]])
        return WHEN_ALLOWED
    except Exception:
        return REFUSES


@pytest.fixture(scope="module")
def tokens() -> Iterator[dict[str, tuple[str, dict[str, Any]]]]:
    """Per alg: a token the issuer signed for AUDIENCE, and the public JWK that verifies it."""
    signed: dict[str, tuple[str, dict[str, Any]]] = {}
    for alg in SIGNING_ALGORITHMS:
        stack = LocalStack(StackSettings(alg=alg))
        stack.start_issuer()
        try:
            stack.admin.create_user("acme", "alice")
            stack.admin.grant("acme", "alice")
            token = stack.admin.issue_token("acme", "alice", audience=AUDIENCE)["token"]
            (key,) = httpx.get(f"{stack.issuer_url}/.well-known/jwks.json").json()["keys"]
        finally:
            stack.stop()
        assert jwt.get_unverified_header(token)["alg"] == alg == key["alg"]
        signed[alg] = (token, key)
    yield signed


def _documented() -> dict[str, dict[str, str]]:
    """The table in docs/interop.md: peer -> alg -> outcome."""
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    table: dict[str, dict[str, str]] = {}
    for line in lines[2:]:
        cells = [re.sub(r"[*`]", "", cell).strip() for cell in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return table


@pytest.mark.parametrize("peer", list(PEERS))
def test_the_documented_interop_table_is_what_the_peer_does(
    peer: str, tokens: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    module, verify = PEERS[peer]
    if module is not None and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    measured = {alg: _outcome(verify, token, key) for alg, (token, key) in tokens.items()}
    assert _documented()[peer] == measured


def test_a_token_signed_by_someone_else_is_refused_by_every_peer(
    tokens: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    """The table would mean nothing if a peer accepted anything: each refuses a forged signature."""
    for peer, (module, verify) in PEERS.items():
        if module is not None and importlib.util.find_spec(module) is None:
            continue
        for alg, (token, key) in tokens.items():
            head, body, signature = token.split(".")
            forged = f"{head}.{body}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}"
            assert _outcome(verify, forged, key) == REFUSES, (peer, alg)
