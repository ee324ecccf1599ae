"""What the verified-token cache costs: bytes per remembered token, and the time of a hit.

    python bench/token_cache.py [--alg ES256] [--tokens 10000]

It serves a JWKS on loopback, verifies `--tokens` distinct tokens shaped like the issuer's
(opaque `sub`, `preferred_username`, `tenant_id`, ...) under tracemalloc, lets go of its own
references to them, and divides what stays allocated by the number of tokens: the cache entry,
the AccessToken and the token text it holds. Then it times a hit (a token verified before) as the
median of 30 batches of 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

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

AUDIENCE = "http://127.0.0.1:9100/mcp"
KID = "bench-key"


def _signing_key(alg: str) -> tuple[Any, dict[str, Any]]:
    if alg == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        public_jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        public_jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return private, {**public_jwk, "kid": KID, "use": "sig", "alg": alg}


def _mint(private: Any, alg: str, issuer: str) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": uuid.uuid4().hex,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "tenant_id": "acme",
        "preferred_username": "alice",
        "email": "alice@acme.example",
        "name": "Alice Example",
        "azp": "host-app",
        "client_id": "host-app",
        "user_type": "account",
    }
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": KID, "typ": "JWT"})


async def _measure(alg: str, count: int) -> tuple[float, float, int]:
    private, public_jwk = _signing_key(alg)

    async def jwks_endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [public_jwk]}, headers={"Cache-Control": "max-age=3600"})

    sock = bind_loopback()
    issuer = socket_url(sock)
    with serve_in_thread(Starlette(routes=[Route("/jwks.json", jwks_endpoint)]), sock):
        settings = VerifierSettings(
            audience=AUDIENCE, issuer=issuer, jwks_url=issuer + "/jwks.json", cache_size=count + 1
        )
        async with JWKSTokenVerifier(settings) as verifier:
            repeated = _mint(private, alg, issuer)
            await verifier.verify(repeated)  # fetches the JWKS and fills the per-header caches
            tokens = [_mint(private, alg, issuer) for _ in range(count)]
            token_chars = sum(map(len, tokens)) // count
            gc.collect()
            tracemalloc.start()
            before, _ = tracemalloc.get_traced_memory()
            for token in tokens:
                await verifier.verify(token)
            del tokens, token
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            per_token = (after - before) / count

            batches = []
            for _ in range(30):
                started = time.perf_counter()
                for _ in range(1000):
                    await verifier.verify(repeated)
                batches.append((time.perf_counter() - started) / 1000 * 1e6)
    return per_token, statistics.median(batches), token_chars


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alg", default="ES256", choices=["RS256", "ES256", "EdDSA"])
    parser.add_argument("--tokens", type=int, default=10_000)
    args = parser.parse_args()
    per_token, hit, token_chars = asyncio.run(_measure(args.alg, args.tokens))
    print(f"{args.alg}, {args.tokens} tokens of {token_chars} characters")
    print(f"bytes per cached token (tracemalloc, token text included): {per_token:.0f}")
    print(f"cache hit: {hit:.2f} µs (median of 30 batches of 1,000)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
