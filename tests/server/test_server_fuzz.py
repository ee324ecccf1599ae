"""Whatever arrives as a Bearer token, the verifier answers `TokenRejected` (never another exception)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_mcp_server import JWKSTokenVerifier, TokenRejected, VerifierSettings

# Nothing listens on port 1: a token that gets as far as key lookup finds no keys, and says so.
_VERIFIER_SETTINGS = VerifierSettings(
    audience="http://127.0.0.1:9100/mcp", jwks_url="http://127.0.0.1:1/jwks.json", http_timeout=2
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "ES256", "EdDSA", "none", "HS256", 7])},
    optional={"kid": st.text(max_size=8) | st.integers(), "typ": st.sampled_from(["JWT", "at+jwt", "x", 1])},
)
_tokens = st.text(max_size=200) | st.builds(
    lambda header, payload, signature: ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()), _b64(signature)]
    ),
    _headers | _json_values,
    _json_values,
    st.binary(max_size=80),
)


# Everything the verifier can say before it has any key to check a signature with.
_REASONS_WITHOUT_KEYS = {
    "token too large",
    "malformed token",
    "algorithm not allowed",
    "token-supplied keys are not accepted",
    "unsupported critical header",
    "unexpected token type",
    "signing keys unavailable",
}


def _outcome(token: str) -> str:
    async def attempt() -> str:
        async with JWKSTokenVerifier(_VERIFIER_SETTINGS) as verifier:
            try:
                await verifier.verify(token)
            except TokenRejected as exc:
                return exc.description
        return "accepted"

    return asyncio.run(attempt())


@settings(max_examples=150, deadline=None)
@given(_tokens)
def test_any_input_is_refused_with_a_reason(token: str) -> None:
    description = _outcome(token)
    assert description in _REASONS_WITHOUT_KEYS


@pytest.mark.parametrize("token", ["", ".", "..", "a.b.c", "a" * 20000, "é.é.é"])
def test_edge_inputs_are_refused(token: str) -> None:
    assert _outcome(token) in _REASONS_WITHOUT_KEYS
