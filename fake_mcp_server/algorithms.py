"""The JWS algorithms a verifier may accept, and the keys each needs: one table, read by the
verifier's settings, its key cache and the authorization server's settings."""

from __future__ import annotations

__all__ = ["ALGORITHM_KEY_TYPES", "DEFAULT_ALGORITHMS", "PYJWT_EQUIVALENTS"]

# The asymmetric algorithms a verifier can accept, each with the JWK key type and curves it needs.
# HMAC and `none` are deliberately absent: a verifier that only holds public keys must never
# accept a token whose "signature" anyone holding the public key could compute.
ALGORITHM_KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    # RFC 9864's fully-specified name: EdDSA over Ed25519 and no other curve.
    "Ed25519": ("OKP", frozenset({"Ed25519"})),
}

# RFC 9864 names PyJWT does not know, with the PyJWT algorithm that computes the same signature.
PYJWT_EQUIVALENTS: dict[str, str] = {"Ed25519": "EdDSA"}

DEFAULT_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
    "Ed25519",
)
