"""`mcp-idfwd decode`: show a JWT's header and claims, its validity window, and whether it verifies.

The raw token is never printed, only what it says.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import ipaddress
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

_ASYMMETRIC_ALGS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "EdDSA", "Ed25519"),
)
_TIME_CLAIMS = (("iat", "issued"), ("nbf", "not before"), ("exp", "expires"))


class DecodeError(Exception):
    """The input is not a compact JWS whose header and payload are JSON objects."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="show a JWT's header, claims and validity window; check its signature with --issuer",
        description=(
            "Decode TOKEN (or read it from standard input with '-'): print its header and claims, the "
            "validity window in human time, and, with --issuer, whether the signature verifies against "
            "that issuer's JWKS. Exit 0 when it decodes (and verifies, if asked), 1 when the signature "
            "does not verify, 2 when it is not a JWT."
        ),
    )
    parser.add_argument("token", metavar="TOKEN|-", help="the token, or - to read it from standard input")
    parser.add_argument("--issuer", help="issuer base URL whose JWKS should verify the signature")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(run=run)


def _segment(text: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise DecodeError(f"the {what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise DecodeError(f"the {what} is not a JSON object")
    return value


def decode_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, unverified."""
    parts = token.split(".")
    if len(parts) != 3:
        raise DecodeError(f"a JWT has 3 dot-separated parts, this has {len(parts)}")
    return _segment(parts[0], "header"), _segment(parts[1], "payload")


def _when(value: Any, now: float) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} (not a number)"
    try:
        moment = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{value!r} (out of range)"
    delta = round(value - now)
    span = _span(abs(delta))
    return f"{moment} ({'in ' + span if delta > 0 else span + ' ago' if delta < 0 else 'now'})"


def _span(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} {seconds % size}s" if unit == "m" else f"{seconds // size}{unit}"
    return f"{seconds}s"


def validity(claims: dict[str, Any], now: float) -> list[str]:
    """One line per time claim, plus whether the token is valid now."""
    lines = [f"{label}: {_when(claims[name], now)}" for name, label in _TIME_CLAIMS if name in claims]
    exp, nbf = claims.get("exp"), claims.get("nbf")
    numeric = (int, float)
    if isinstance(exp, numeric) and not isinstance(exp, bool) and exp <= now:
        lines.append("status: expired")
    elif isinstance(nbf, numeric) and not isinstance(nbf, bool) and nbf > now:
        lines.append("status: not yet valid")
    elif "exp" not in claims:
        lines.append("status: no exp claim (never expires)")
    else:
        lines.append("status: within its validity window")
    return lines


def _check_url(issuer: str) -> str:
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DecodeError(f"--issuer must be an absolute http(s) URL, got {issuer!r}")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "http" and not loopback:
        raise DecodeError("--issuer must use https for a host that is not loopback")
    return issuer.rstrip("/")


def check_signature(token: str, header: dict[str, Any], issuer: str) -> tuple[bool, str]:
    """(verified, one line saying why) against `issuer`'s JWKS, found through its discovery document."""
    base = _check_url(issuer)
    alg = header.get("alg")
    if alg not in _ASYMMETRIC_ALGS:
        return False, f"not verified: algorithm {alg!r} is not an asymmetric JWS algorithm"
    try:
        with httpx.Client(timeout=10.0) as http:
            discovery = http.get(f"{base}/.well-known/openid-configuration")
            jwks_uri = f"{base}/.well-known/jwks.json"
            if discovery.is_success and isinstance(discovery.json().get("jwks_uri"), str):
                jwks_uri = discovery.json()["jwks_uri"]
            response = http.get(jwks_uri)
            response.raise_for_status()
            jwks = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DecodeError(f"could not fetch the JWKS of {base}: {type(exc).__name__}") from None
    keys = [key for key in jwks.get("keys", []) if isinstance(key, dict)]
    kid = header.get("kid")
    matching = [key for key in keys if key.get("kid") == kid] if kid is not None else keys
    if not matching:
        return False, f"not verified: kid {kid!r} is not in the issuer's JWKS"
    try:
        key = jwt.PyJWK(matching[0], algorithm="EdDSA" if alg == "Ed25519" else alg)
        jwt.PyJWS().decode_complete(token, key=key, algorithms=[key.algorithm_name])
    except jwt.PyJWTError as exc:
        return False, f"not verified: {exc}"
    return True, f"verified with kid {matching[0].get('kid')!r} from {base}"


def _read_token(argument: str) -> str:
    text = sys.stdin.read() if argument == "-" else argument
    text = text.strip()
    if text.lower().startswith("bearer "):
        text = text[7:].strip()
    return text


def run(args: argparse.Namespace) -> int:
    token = _read_token(args.token)
    try:
        header, claims = decode_parts(token)
        signature = check_signature(token, header, args.issuer) if args.issuer else None
    except DecodeError as exc:
        print(f"decode: {exc}", file=sys.stderr)
        return 2
    window = validity(claims, time.time())
    if args.json:
        result: dict[str, Any] = {"header": header, "claims": claims, "validity": window}
        if signature is not None:
            result["signature"] = {"verified": signature[0], "detail": signature[1]}
        print(json.dumps(result, indent=2))
    else:
        print("header: " + json.dumps(header, indent=2))
        print("claims: " + json.dumps(claims, indent=2))
        print("\n".join(window))
        print("signature: " + (signature[1] if signature else "not checked (give --issuer URL)"))
    return 1 if signature is not None and not signature[0] else 0
