"""How long one token verification takes: JWKSTokenVerifier beside the Python peers, in one run.

    python bench/verify.py [--algs RS256 ES256 EdDSA] [--n 200] [--repeats 3] [--batch 10] [--quick]
                           [--json-out PATH]

For each algorithm: one signing key, its JWKS served on loopback, and tokens minted with PyJWT
(the claims and header our issuer puts in an access token). Every verifier checks the same tokens
the same way: signature, `exp`, `iss` and `aud`. The verifiers, timed in turns (bench/_support.py
`interleave`, min/median of the repeats):
- `JWKSTokenVerifier.verify` on tokens it has never seen (fresh) and on one token again and again
  (cache hit: every request of an MCP session after the first);
- FastMCP `JWTVerifier(jwks_uri=...)`: fetches the JWKS over loopback on its first token and keeps
  the keys by `kid` (an hour); it verifies every token in full each time (no token cache);
- PyJWT `PyJWKClient(jwks_uri)` + `jwt.decode`: fetches over loopback, keeps the key set (5 min,
  its default), looks the key up by `kid` per token;
- Authlib `authlib.jose.JsonWebToken` and joserfc `jwt.decode` + `JWTClaimsRegistry`: they have no
  JWKS client, so the JWKS is fetched once over loopback here and loaded once into their key set;
- PyJWT `jwt.decode` with the public key in hand: the floor (no key lookup at all).
Peers get the same fresh tokens (none of them caches verified tokens). Each operation raises if
the token is refused, so a failing verifier cannot look fast.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cryptography
import httpx
import jwt
from _support import (
    Measurement,
    Report,
    add_json_out_argument,
    interleave,
    machine_summary,
    markdown_table,
    min_median,
    operations_per_mode,
    paired_ratio,
)
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fake_mcp_server import JWKSTokenVerifier, VerifierSettings
from harness.servers import bind_loopback, serve_in_thread, socket_url

# The peers come with the bench extra (pip install -e ".[bench]"); a missing one is named in the output.
try:
    from fastmcp.server.auth.providers.jwt import JWTVerifier
except ImportError:
    JWTVerifier = None
try:
    import authlib

    with warnings.catch_warnings():
        # authlib.deprecate installs an "always" filter for its warnings when imported; ours goes
        # after it, so "authlib.jose module is deprecated, please use joserfc" stays quiet.
        import authlib.deprecate

        warnings.simplefilter("ignore")
        from authlib.jose import JsonWebKey, JsonWebToken
except ImportError:
    authlib = None
try:
    import joserfc
    from joserfc import jwt as joserfc_jwt
    from joserfc.jwk import KeySet
except ImportError:
    joserfc = None

AUDIENCE = "http://127.0.0.1:9100/mcp"
KID = "bench-key"
CACHE_HIT_GOAL_US = 2.0


@dataclass(frozen=True)
class Verifier:
    """A row of the table: a mode name, its label, and where its keys come from."""

    name: str
    label: str
    keys: str


VERIFIERS = (
    Verifier("ours_fresh", "JWKSTokenVerifier, fresh token", "JWKS over loopback, cached"),
    Verifier("ours_hit", "JWKSTokenVerifier, cache hit", "JWKS over loopback, cached"),
    Verifier("fastmcp", "FastMCP JWTVerifier", "JWKS over loopback, cached"),
    Verifier("pyjwkclient", "PyJWT PyJWKClient + jwt.decode", "JWKS over loopback, cached"),
    Verifier("authlib", "Authlib authlib.jose JsonWebToken", "JWKS fetched once, loaded once"),
    Verifier("joserfc", "joserfc jwt.decode + JWTClaimsRegistry", "JWKS fetched once, loaded once"),
    Verifier("pyjwt_floor", "PyJWT jwt.decode, key in hand (floor)", "public key object"),
)
PEERS = ("fastmcp", "pyjwkclient", "authlib", "joserfc")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algs", nargs="+", default=["RS256", "ES256", "EdDSA"])
    parser.add_argument("--n", type=int, default=200, help="samples per repeat and verifier (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default 3)")
    parser.add_argument("--batch", type=int, default=10, help="verifications per sample (default 10)")
    parser.add_argument("--quick", action="store_true", help="n 20, batch 5: rough figures")
    add_json_out_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.batch = 20, 5
    return args


def _signing_key(alg: str) -> tuple[Any, dict[str, Any]]:
    if alg.startswith(("RS", "PS")):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        public_jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        public_jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        raise SystemExit(f"no benchmark key for {alg}")
    return private, {**public_jwk, "kid": KID, "use": "sig", "alg": alg}


def _mint(private: Any, alg: str, issuer: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "tenant_id": "tenant-a",
        "email": "user-1@example.test",
        "name": "User One",
        "client_id": "host-app",
        "scope": "openid profile email",
    }
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": KID, "typ": "JWT"})


def missing_peers() -> list[str]:
    """The peer libraries that are not installed (their rows are left out)."""
    installed = {"fastmcp": JWTVerifier, "authlib": authlib, "joserfc": joserfc}
    return [name for name, module in installed.items() if module is None]


def _peer_operations(
    alg: str, issuer: str, jwks_url: str, public_key: Any, fresh: Callable[[], Iterator[str]]
) -> dict[str, Callable[[], object]]:
    """The peers' verifications, each drawing the next token from its own pass over the tokens."""
    operations: dict[str, Callable[[], object]] = {}
    jwks = httpx.get(jwks_url).raise_for_status().json()  # for the peers without a JWKS client

    if JWTVerifier is not None:
        fastmcp = JWTVerifier(jwks_uri=jwks_url, issuer=issuer, audience=AUDIENCE, algorithm=alg)
        fastmcp_tokens = fresh()

        async def fastmcp_verify() -> None:
            if await fastmcp.verify_token(next(fastmcp_tokens)) is None:
                raise RuntimeError("FastMCP JWTVerifier refused a good token")

        operations["fastmcp"] = fastmcp_verify

    jwk_client = jwt.PyJWKClient(jwks_url)
    jwk_client_tokens = fresh()

    def pyjwkclient_verify() -> None:
        token = next(jwk_client_tokens)
        key = jwk_client.get_signing_key_from_jwt(token)
        jwt.decode(token, key, algorithms=[alg], audience=AUDIENCE, issuer=issuer)

    operations["pyjwkclient"] = pyjwkclient_verify

    if authlib is not None:
        authlib_jwt = JsonWebToken([alg])
        authlib_keys = JsonWebKey.import_key_set(jwks)
        authlib_claims = {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": AUDIENCE},
            "exp": {"essential": True},
        }
        authlib_tokens = fresh()

        def authlib_verify() -> None:
            authlib_jwt.decode(next(authlib_tokens), authlib_keys, claims_options=authlib_claims).validate()

        operations["authlib"] = authlib_verify

    if joserfc is not None:
        joserfc_keys = KeySet.import_key_set(jwks)
        joserfc_claims = joserfc_jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True},
        )
        joserfc_tokens = fresh()

        def joserfc_verify() -> None:
            joserfc_claims.validate(joserfc_jwt.decode(next(joserfc_tokens), joserfc_keys, [alg]).claims)

        operations["joserfc"] = joserfc_verify

    floor_tokens = fresh()

    def pyjwt_floor() -> None:
        jwt.decode(next(floor_tokens), public_key, algorithms=[alg], audience=AUDIENCE, issuer=issuer)

    operations["pyjwt_floor"] = pyjwt_floor
    return operations


async def measure_alg(alg: str, args: argparse.Namespace) -> dict[str, Measurement]:
    private, public_jwk = _signing_key(alg)
    jwks = {"keys": [public_jwk]}

    async def jwks_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(jwks, headers={"Cache-Control": "max-age=3600"})

    sock = bind_loopback()
    issuer = socket_url(sock)
    jwks_url = issuer + "/jwks.json"
    app = Starlette(routes=[Route("/jwks.json", jwks_endpoint)])
    with serve_in_thread(app, sock):
        count = operations_per_mode(n=args.n, repeats=args.repeats, batch=args.batch)
        tokens = [_mint(private, alg, issuer) for _ in range(count)]
        settings = VerifierSettings(audience=AUDIENCE, issuer=issuer, jwks_url=jwks_url)
        async with JWKSTokenVerifier(settings) as verifier:
            repeated = _mint(private, alg, issuer)
            await verifier.verify(repeated)  # fetches the JWKS; `repeated` is now remembered
            ours_tokens = iter(tokens)
            operations: dict[str, Callable[[], object]] = {
                "ours_fresh": lambda: verifier.verify(next(ours_tokens)),
                "ours_hit": lambda: verifier.verify(repeated),
            }
            operations |= await asyncio.to_thread(
                _peer_operations, alg, issuer, jwks_url, private.public_key(), lambda: iter(tokens)
            )
            return await interleave(operations, n=args.n, repeats=args.repeats, batch=args.batch)


def report_alg(alg: str, measured: dict[str, Measurement], report: Report) -> list[list[object]]:
    ours = measured["ours_fresh"]
    rows: list[list[object]] = []
    for verifier in VERIFIERS:
        if verifier.name not in measured:
            continue
        measurement = measured[verifier.name]
        headline = verifier.name == "ours_fresh" or (verifier.name == "ours_hit" and alg == "ES256")
        report.measured(
            f"{alg}.{verifier.name}", measurement, "us", label=f"{verifier.label}, {alg}", headline=headline
        )
        ratio = paired_ratio(measurement, ours)
        if verifier.name != "ours_fresh":
            report.add(
                f"{alg}.{verifier.name}_over_ours_fresh",
                ratio,
                "x",
                label=f"{verifier.label} ÷ JWKSTokenVerifier fresh, {alg}",
            )
        rows.append(
            [
                alg,
                verifier.label,
                verifier.keys,
                min_median(measurement, "us", 1 if measurement.median > 1e-5 else 2),
                f"{measurement.p95 * 1e6:.1f}",
                f"{ratio:.2f}",
            ]
        )
    peers = [name for name in PEERS if name in measured]
    closest = min(peers, key=lambda name: paired_ratio(measured[name], ours))
    report.add(
        f"{alg}.closest_peer_over_ours_fresh",
        paired_ratio(measured[closest], ours),
        "x",
        label=f"closest peer ({next(v.label for v in VERIFIERS if v.name == closest)}) ÷ ours fresh, {alg}",
        headline=True,
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.disable(logging.WARNING)  # FastMCP logs each verification at INFO/DEBUG
    warnings.filterwarnings("ignore", module="joserfc")  # "EdDSA is deprecated via RFC 9864"

    report = Report("verify")
    rows: list[list[object]] = []
    cache_hits: list[float] = []
    for alg in args.algs:
        measured = asyncio.run(measure_alg(alg, args))
        rows += report_alg(alg, measured, report)
        cache_hits.append(measured["ours_hit"].median * 1e6)

    print(f"### Token verification, JWKSTokenVerifier and its peers ({machine_summary()})")
    print()
    print(
        f"PyJWT {jwt.__version__}, Authlib {authlib.__version__}, joserfc {joserfc.__version__},"
        f" cryptography {cryptography.__version__}. Each verifier checks signature, exp, iss and aud of\n"
        f"the same tokens; the verifiers take turns, {args.repeats} repeats of {args.n} samples of"
        f" {args.batch} verifications each.\n"
        "µs per verification: min / median across repeats of the repeat medians; p95 of all samples;\n"
        "'÷ ours fresh': this row's median over JWKSTokenVerifier's on a fresh token, repeat by repeat,"
        " median of those (> 1: we are faster)."
    )
    missing = missing_peers()
    if missing:
        print(f'\nNot installed, left out: {", ".join(missing)} (pip install -e ".[bench]").')
    print()
    headers = ["alg", "verifier", "keys", "µs min / median", "p95 µs", "÷ ours fresh"]
    print(markdown_table(headers, rows))
    print()
    worst = max(cache_hits)
    verdict = "met" if worst <= CACHE_HIT_GOAL_US else "MISSED"
    print(f"goal cache hit <= {CACHE_HIT_GOAL_US:g} µs: slowest {worst:.2f} µs, {verdict}")
    print()
    report.write(args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
