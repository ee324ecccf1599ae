"""What the verified-token cache costs: bytes per remembered token, and the time of a hit.

    python bench/token_cache.py [--alg ES256] [--tokens 10000] [--quick] [--json-out PATH]

It serves a JWKS on loopback and mints `--tokens` tokens shaped like the issuer's, one per user
(opaque `sub`, `preferred_username`, `email`, `name`, `tenant_id`, ...), as bytes, the way they
arrive in a request. Under tracemalloc it turns each into text and verifies it, as a server does
per request, then lets go of the text: what stays allocated, divided by the number of tokens, is
what the cache keeps per token (its entry, its key, the claims, the table's bookkeeping, and the
token text if the cache holds on to it). Then it times cache hits, each on new token text (a
request's header is a new string): `hit` presents one token again and again (served from the
tier of recently used tokens), `hit_cold` goes round all `--tokens` tokens (each served from the
compact entries); samples of `--batch` hits, `--repeats` repeats of `--n` samples, the two modes
interleaved (bench/_support.py `interleave`).

`--baseline FILE` compares with another version of fake_mcp_server/verifier.py in the same run
(e.g. `git show main:fake_mcp_server/verifier.py > /tmp/before.py`): its bytes per token too,
its hits interleaved with ours, and our figures divided by its (`*_over_baseline`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import itertools
import sys
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from _support import (
    Measurement,
    Report,
    add_json_out_argument,
    interleave,
    machine_summary,
    markdown_table,
    paired_ratio,
)
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fake_mcp_server import JWKSTokenVerifier, VerifierSettings
from harness.servers import bind_loopback, serve_in_thread, socket_url

AUDIENCE = "http://127.0.0.1:9100/mcp"
KID = "bench-key"
GOAL_BYTES_PER_TOKEN = 1024
GOAL_HIT_US = 2.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alg", default="ES256", choices=["RS256", "ES256", "EdDSA"])
    parser.add_argument("--tokens", type=int, default=10_000, help="tokens cached (default 10,000)")
    parser.add_argument("--n", type=int, default=200, help="hit samples per repeat (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats (default 3)")
    parser.add_argument("--batch", type=int, default=100, help="hits per sample (default 100)")
    parser.add_argument(
        "--quick", action="store_true", help="hits: n 20, batch 50 (memory still at --tokens)"
    )
    parser.add_argument("--baseline", type=Path, metavar="FILE", help="a verifier.py to compare with")
    add_json_out_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.batch = 20, 50
    return args


def signing_key(alg: str) -> tuple[Any, dict[str, Any]]:
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


def mint(private: Any, alg: str, issuer: str, user: int) -> tuple[bytes, str]:
    """A token of user number `user`, as the bytes of a request header carry it, and its subject."""
    now = int(time.time())
    subject = uuid.uuid4().hex
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "tenant_id": "acme",
        "preferred_username": f"user-{user:05d}",
        "email": f"user-{user:05d}@acme.example",
        "name": f"User {user:05d}",
        "azp": "host-app",
        "client_id": "host-app",
        "user_type": "account",
    }
    token = jwt.encode(claims, private, algorithm=alg, headers={"kid": KID, "typ": "JWT"})
    return token.encode("ascii"), subject


async def bytes_per_token(verifier: JWKSTokenVerifier, tokens: list[tuple[bytes, str]]) -> float:
    """Bytes that stay allocated per token verified (tracemalloc), the tokens' text included if kept."""
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for raw, _ in tokens:
        await verifier.verify(raw.decode("ascii"))
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (after - before) / len(tokens)


def baseline_verifier_class(path: Path) -> type[JWKSTokenVerifier]:
    """`JWKSTokenVerifier` of another version of fake_mcp_server/verifier.py."""
    spec = importlib.util.spec_from_file_location("baseline_verifier", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"token_cache.py: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.JWKSTokenVerifier  # type: ignore[no-any-return]


async def measure(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, Measurement], int]:
    """Bytes per token and hit timings of each verifier: ours, and the baseline's if asked for."""
    private, public_jwk = signing_key(args.alg)

    async def jwks_endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [public_jwk]}, headers={"Cache-Control": "max-age=3600"})

    classes = {"ours": JWKSTokenVerifier}
    if args.baseline is not None:
        classes["baseline"] = baseline_verifier_class(args.baseline)
    sock = bind_loopback()
    issuer = socket_url(sock)
    per_token: dict[str, float] = {}
    operations: dict[str, Callable[[], Awaitable[None]]] = {}
    with serve_in_thread(Starlette(routes=[Route("/jwks.json", jwks_endpoint)]), sock):
        settings = VerifierSettings(
            audience=AUDIENCE, issuer=issuer, jwks_url=issuer + "/jwks.json", cache_size=args.tokens + 1
        )
        repeated = mint(private, args.alg, issuer, args.tokens)
        tokens = [mint(private, args.alg, issuer, user) for user in range(args.tokens)]
        async with contextlib.AsyncExitStack() as stack:
            verifiers = [await stack.enter_async_context(cls(settings)) for cls in classes.values()]
            for name, verifier in zip(classes, verifiers, strict=True):
                # Fetches the JWKS and fills the per-header cache, which every token shares.
                await verifier.verify(repeated[0].decode("ascii"))
                per_token[name] = await bytes_per_token(verifier, tokens)
                operations |= hit_operations(name, verifier, repeated, tokens)
            fetches = [verifier.jwks.fetches for verifier in verifiers]
            measured = await interleave(operations, n=args.n, repeats=args.repeats, batch=args.batch)
            # No key fetched again, and (where it can say) every token still cached: all were hits.
            if [verifier.jwks.fetches for verifier in verifiers] != fetches or (
                verifiers[0].cached_tokens != args.tokens + 1
            ):
                raise RuntimeError("a token left the cache while hits were timed")
    return per_token, measured, len(repeated[0])


def hit_operations(
    name: str, verifier: JWKSTokenVerifier, repeated: tuple[bytes, str], tokens: list[tuple[bytes, str]]
) -> dict[str, Callable[[], Awaitable[None]]]:
    round_robin = itertools.cycle(tokens)

    async def hit(raw: bytes, subject: str) -> None:
        if (await verifier.verify(raw.decode("ascii"))).subject != subject:
            raise RuntimeError("a cache hit answered for another subject")

    return {f"{name}.hit": lambda: hit(*repeated), f"{name}.hit_cold": lambda: hit(*next(round_robin))}


HITS = {
    "hit": "cache hit, a recently used token",
    "hit_cold": "cache hit, round all tokens (compact entries)",
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    per_token, measured, token_chars = asyncio.run(measure(args))
    report = Report("token_cache")
    about = f"{args.alg}, {args.tokens:,} tokens cached"
    rows: list[list[object]] = []
    for name in per_token:
        prefix = args.alg if name == "ours" else f"baseline.{args.alg}"
        who = "verifier" if name == "ours" else "baseline verifier"
        headline = name == "ours"
        bytes_used = per_token[name]
        report.add(
            f"{prefix}.bytes_per_token",
            bytes_used,
            "B",
            label=f"{who}, bytes per cached token ({about})",
            headline=headline,
        )
        goal = f"<= {GOAL_BYTES_PER_TOKEN:,}"
        rows.append(
            [
                name,
                "bytes per cached token",
                f"{bytes_used:,.0f}",
                goal,
                _verdict(bytes_used, GOAL_BYTES_PER_TOKEN),
            ]
        )
        for mode, label in HITS.items():
            hit = measured[f"{name}.{mode}"]
            report.measured(f"{prefix}.{mode}", hit, "us", label=f"{who} {label}, {about}", headline=headline)
            value = f"{hit.best * 1e6:.2f} / {hit.median * 1e6:.2f} ({hit.p95 * 1e6:.2f})"
            rows.append(
                [
                    name,
                    f"{label}, µs min / median (p95)",
                    value,
                    f"<= {GOAL_HIT_US:g}",
                    _verdict(hit.median * 1e6, GOAL_HIT_US),
                ]
            )
    if "baseline" in per_token:
        ratio = per_token["ours"] / per_token["baseline"]
        report.add(
            f"{args.alg}.bytes_per_token_over_baseline",
            ratio,
            "x",
            label=f"bytes per token ÷ baseline's ({about})",
        )
        rows.append(["ours ÷ baseline", "bytes per cached token", f"{ratio:.2f}x", "", ""])
        for mode, label in HITS.items():
            ratio = paired_ratio(measured[f"ours.{mode}"], measured[f"baseline.{mode}"])
            report.add(
                f"{args.alg}.{mode}_over_baseline", ratio, "x", label=f"{label} ÷ baseline's ({about})"
            )
            rows.append(["ours ÷ baseline", label, f"{ratio:.2f}x", "", ""])
    report.add(f"{args.alg}.token_chars", token_chars, "count", label=f"characters per token ({args.alg})")

    print(f"### Verified-token cache: memory and hit time ({machine_summary()})")
    print()
    print(
        f"{args.tokens:,} {args.alg} tokens of {token_chars} characters, one per user, verified under"
        " tracemalloc; bytes that stay\nallocated per token (entry, key, claims, table bookkeeping)."
        f" Hits: {args.repeats} repeats of {args.n} samples of\n{args.batch} hits, each on new token"
        " text, the kinds interleaved; µs min / median across repeats of the\nrepeat medians; p95 of"
        " all samples; ratios paired repeat by repeat."
    )
    if args.baseline is not None:
        print(f"Baseline: {args.baseline}.")
    print()
    print(markdown_table(["verifier", "figure", "value", "goal", "verdict"], rows))
    print()
    report.write(args.json_out)
    return 0


def _verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "NOT met"


if __name__ == "__main__":
    sys.exit(main())
