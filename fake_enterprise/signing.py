"""Signing JWTs with the issuer's keys, under every algorithm name the issuer offers.

PyJWT knows Ed25519 signatures only by the polymorphic name `EdDSA`. RFC 9864 adds the
fully-specified name `Ed25519` for the same signature; this module signs it with PyJWT's EdDSA
implementation on a private `PyJWS`, so the name reaches no other PyJWT user in the process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt
from jwt.algorithms import Algorithm, OKPAlgorithm

__all__ = ["algorithm", "sign_jwt", "verified_payload"]

# RFC 9864 §2.2: `Ed25519` is EdDSA over the Ed25519 curve, the signature PyJWT's EdDSA computes.
_FULLY_SPECIFIED = {"Ed25519": OKPAlgorithm}

_JWS = jwt.PyJWS()
for _name, _implementation in _FULLY_SPECIFIED.items():
    _JWS.register_algorithm(_name, _implementation())


def algorithm(alg: str) -> Algorithm:
    """PyJWT's implementation of the JWS `alg` (KeyError-free: NotImplementedError if unknown)."""
    implementation = _FULLY_SPECIFIED.get(alg)
    if implementation is not None:
        return implementation()
    return jwt.get_algorithm_by_name(alg)


def sign_jwt(claims: Mapping[str, Any], private_key: Any, *, alg: str, headers: Mapping[str, Any]) -> str:
    """A compact JWS of `claims` (JSON), signed with `private_key` under `alg`, with `headers` added."""
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return _JWS.encode(payload, private_key, algorithm=alg, headers=dict(headers))


def verified_payload(token: str, public_key: Any, *, alg: str) -> bytes:
    """The payload of `token` if `public_key` signed it under `alg`; raises `jwt.PyJWTError` if not."""
    return _JWS.decode_complete(token, public_key, algorithms=[alg])["payload"]
