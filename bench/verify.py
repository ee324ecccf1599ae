"""How long one token verification takes: JWKSTokenVerifier beside PyJWT's plain `jwt.decode`.

    python bench/verify.py [--algs RS256 ES256 EdDSA] [--batch 100] [--rounds 30]

For each algorithm it serves a JWKS on loopback, mints `batch * rounds` distinct tokens, and
times, in interleaved batches (so a noisy neighbour hurts every column alike):
- PyJWT `jwt.decode(token, public_key, algorithms=[alg], audience=..., issuer=...)`, the baseline;
- `JWKSTokenVerifier.verify` on tokens it has never seen (fresh) and on one token again and
  again (repeat, what every request of an MCP session after the first costs);
- FastMCP's `JWTVerifier.verify_token`, fresh and repeat, when `fastmcp` is installed
  (`pip install -e ".[bench]"`).
Figures are the median over the batches of the mean µs per token.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import random
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cryptography
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fake_mcp_server import JWKSTokenVerifier, VerifierSettings
from harness.servers import bind_loopback, serve_in_thread, socket_url

try:
    from fastmcp.server.auth.providers.jwt import JWTVerifier
except ImportError:  # the bench extra is optional: its columns are left out
    JWTVerifier = None

AUDIENCE = "http://127.0.0.1:9100/mcp"
KID = "bench-key"

Timed = Callable[[list[str]], Awaitable[None]]


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


@dataclass
class Row:
    alg: str
    figures: dict[str, float]


async def _bench_alg(alg: str, batch: int, rounds: int) -> Row:
    private, public_jwk = _signing_key(alg)
    jwks = {"keys": [public_jwk]}

    async def jwks_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(jwks, headers={"Cache-Control": "max-age=3600"})

    sock = bind_loopback()
    issuer = socket_url(sock)
    app = Starlette(routes=[Route("/jwks.json", jwks_endpoint)])
    with serve_in_thread(app, sock):
        tokens = [_mint(private, alg, issuer) for _ in range(batch * rounds)]
        batches = [tokens[i * batch : (i + 1) * batch] for i in range(rounds)]
        public_key = private.public_key()
        settings = VerifierSettings(audience=AUDIENCE, issuer=issuer, jwks_url=issuer + "/jwks.json")
        async with JWKSTokenVerifier(settings) as verifier:
            repeated = _mint(private, alg, issuer)
            await verifier.verify(repeated)  # fetches the JWKS; `repeated` is now remembered

            async def pyjwt_decode(sample: list[str]) -> None:
                for token in sample:
                    jwt.decode(token, public_key, algorithms=[alg], audience=AUDIENCE, issuer=issuer)

            async def ours_fresh(sample: list[str]) -> None:
                for token in sample:
                    await verifier.verify(token)

            async def ours_repeat(sample: list[str]) -> None:
                for _ in sample:
                    await verifier.verify(repeated)

            timed: dict[str, Timed] = {
                "pyjwt": pyjwt_decode,
                "fresh": ours_fresh,
                "repeat": ours_repeat,
            }
            if JWTVerifier is not None:
                fastmcp = JWTVerifier(
                    jwks_uri=issuer + "/jwks.json", issuer=issuer, audience=AUDIENCE, algorithm=alg
                )
                assert await fastmcp.verify_token(repeated) is not None

                async def fastmcp_fresh(sample: list[str]) -> None:
                    for token in sample:
                        await fastmcp.verify_token(token)

                async def fastmcp_repeat(sample: list[str]) -> None:
                    for _ in sample:
                        await fastmcp.verify_token(repeated)

                timed |= {"fastmcp_fresh": fastmcp_fresh, "fastmcp_repeat": fastmcp_repeat}

            samples: dict[str, list[float]] = {name: [] for name in timed}
            for sample in batches:
                order = list(timed)
                random.shuffle(order)
                for name in order:
                    started = time.perf_counter()
                    await timed[name](sample)
                    samples[name].append((time.perf_counter() - started) / len(sample) * 1e6)
    return Row(alg, {name: statistics.median(values) for name, values in samples.items()})


def _table(rows: list[Row]) -> str:
    columns = [
        "alg",
        "PyJWT `jwt.decode`",
        "JWKSTokenVerifier fresh",
        "fresh ÷ PyJWT",
        "JWKSTokenVerifier repeat",
        "PyJWT ÷ repeat",
    ]
    if JWTVerifier is not None:
        columns += ["FastMCP JWTVerifier fresh", "FastMCP JWTVerifier repeat"]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if i else "---" for i in range(len(columns))) + "|",
    ]
    for row in rows:
        f = row.figures
        cells = [
            row.alg,
            f"{f['pyjwt']:.1f} µs",
            f"{f['fresh']:.1f} µs",
            f"{f['fresh'] / f['pyjwt']:.2f}x",
            f"{f['repeat']:.2f} µs",
            f"{f['pyjwt'] / f['repeat']:.0f}x",
        ]
        if JWTVerifier is not None:
            cells += [f"{f['fastmcp_fresh']:.1f} µs", f"{f['fastmcp_repeat']:.1f} µs"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algs", nargs="+", default=["RS256", "ES256", "EdDSA"])
    parser.add_argument("--batch", type=int, default=100, help="tokens per timed batch")
    parser.add_argument("--rounds", type=int, default=30, help="batches per column")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # FastMCP logs each verification at INFO/DEBUG
    warnings.filterwarnings("ignore", module="joserfc")  # "EdDSA is deprecated via RFC 9864"

    rows = [asyncio.run(_bench_alg(alg, args.batch, args.rounds)) for alg in args.algs]
    fastmcp_note = "" if JWTVerifier is not None else " (fastmcp not installed: its columns are left out)"
    print(
        f"Python {platform.python_version()}, PyJWT {jwt.__version__},"
        f" cryptography {cryptography.__version__}, {os.cpu_count()} CPUs;"
        f" median of {args.rounds} batches of {args.batch} tokens{fastmcp_note}\n"
    )
    print(_table(rows))
    print()
    worst_fresh = max(row.figures["fresh"] / row.figures["pyjwt"] for row in rows)
    least_repeat = min(row.figures["pyjwt"] / row.figures["repeat"] for row in rows)
    print(f"goal fresh ≤ 1.3x PyJWT decode: worst {worst_fresh:.2f}x, " + _verdict(worst_fresh <= 1.3))
    print(f"goal repeat ≥ 20x faster:       least {least_repeat:.0f}x, " + _verdict(least_repeat >= 20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
