"""JWKSTokenVerifier alone, against a JWKS the test hosts: its results, its token cache, its key cache."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.server.auth.provider import AccessToken, principal_components
from server_support import JWKSHost, Keys, RunningServer, SigningKey, mint

from fake_mcp_server import JWKSTokenVerifier, SigningKeysUnavailable, TokenRejected, VerifierSettings
from fake_mcp_server import verifier as verifier_module
from fake_mcp_server.jwks import JWKSCache

pytestmark = pytest.mark.anyio

AUDIENCE = "http://127.0.0.1:9100/mcp"


def _new_rsa(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
async def verifier(jwks_host: JWKSHost) -> AsyncIterator[JWKSTokenVerifier]:
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        yield verifier


def _token(host: JWKSHost, key: SigningKey, **options: Any) -> str:
    return mint(key, issuer=host.url, audience=AUDIENCE, **options)


@pytest.fixture
def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Record every key lookup, which every full verification (and no cache hit) makes."""
    calls: list[str | None] = []
    real_key_for = JWKSCache.key_for

    async def counting_key_for(self: JWKSCache, kid: str | None, alg: str) -> Any:
        calls.append(kid)
        return await real_key_for(self, kid, alg)

    monkeypatch.setattr(JWKSCache, "key_for", counting_key_for)
    return calls


async def test_access_token_carries_the_verified_identity(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys
) -> None:
    token = _token(jwks_host, keys.rsa, claims={"scope": "notes:read notes:write", "sub": "alice"})
    access = await verifier.verify(token)
    assert access.subject == "alice"
    assert access.client_id == "host-app"
    assert access.scopes == ["notes:read", "notes:write"]
    assert access.resource == AUDIENCE
    assert access.expires_at == jwt.decode(token, options={"verify_signature": False})["exp"]
    assert access.claims is not None and access.claims["tenant_id"] == "tenant-a"
    assert access.token == token


async def test_verify_token_protocol_returns_none_on_rejection(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys
) -> None:
    assert (
        await verifier.verify_token(_token(jwks_host, keys.rsa, claims={"aud": "http://127.0.0.1:1/x"}))
        is None
    )
    assert (await verifier.verify_token(_token(jwks_host, keys.ec))) is not None


async def test_client_id_falls_back_to_azp(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys
) -> None:
    token = _token(jwks_host, keys.rsa, claims={"azp": "agent"}, drop=("client_id",))
    assert (await verifier.verify(token)).client_id == "agent"


async def test_repeat_token_is_served_from_cache(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    token = _token(jwks_host, keys.rsa)
    first = await verifier.verify(token)
    second = await verifier.verify(token)
    assert second is first
    assert len(count_decodes) == 1


async def test_token_past_exp_is_never_answered_from_cache(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    # Past exp but inside the leeway: accepted, yet each request must be checked again.
    token = _token(jwks_host, keys.rsa, claims={"exp": int(time.time()) - 5})
    await verifier.verify(token)
    await verifier.verify(token)
    assert len(count_decodes) == 2


async def test_cache_is_bounded_and_keeps_the_token_in_use(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, cache_size=2)
    async with JWKSTokenVerifier(settings) as verifier:
        first, second, third = (_token(jwks_host, keys.rsa) for _ in range(3))
        for token in (first, second, first, third):  # `second` was never hit: it goes
            await verifier.verify(token)
        assert len(count_decodes) == 3
        await verifier.verify(first)
        assert len(count_decodes) == 3
        await verifier.verify(second)
        assert len(count_decodes) == 4


class WallClock:
    """The verifier's clock for exp, nbf and iat: the real time, moved on by the test."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@pytest.fixture
def compact_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No recently-used tier: every cache hit is served from the compact, digest-keyed entries."""
    monkeypatch.setattr(verifier_module, "_RECENT_SIZE", 0)


async def test_full_cache_drops_every_expired_token_before_any_live_one(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    clock = WallClock()
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, cache_size=3)
    async with JWKSTokenVerifier(settings, clock=clock) as verifier:
        now = int(time.time())
        short = [_token(jwks_host, keys.ec, claims={"exp": now + 60}) for _ in range(2)]
        live = _token(jwks_host, keys.ec, claims={"exp": now + 600})
        for token in (*short, live):  # `live` is the most recently used
            await verifier.verify(token)
        assert verifier.cached_tokens == 3

        clock.ahead = 120  # both short-lived tokens are now past exp (and past the leeway)
        await verifier.verify(_token(jwks_host, keys.ec, claims={"exp": now + 600}))
        # Both expired entries went at once; the least recently used live one stayed.
        assert verifier.cached_tokens == 2
        decodes = len(count_decodes)
        await verifier.verify(live)
        assert len(count_decodes) == decodes
        with pytest.raises(TokenRejected, match="token expired"):
            await verifier.verify(short[0])


async def test_full_cache_of_live_tokens_drops_the_least_recently_used(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    clock = WallClock()
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, cache_size=2)
    async with JWKSTokenVerifier(settings, clock=clock) as verifier:
        now = int(time.time())
        first, second = (_token(jwks_host, keys.ec, claims={"exp": now + 60}) for _ in range(2))
        await verifier.verify(first)
        await verifier.verify(second)
        clock.ahead = 30  # nothing has expired yet: one place is made, by the LRU rule
        await verifier.verify(_token(jwks_host, keys.ec))
        assert verifier.cached_tokens == 2
        decodes = len(count_decodes)
        await verifier.verify(second)
        assert len(count_decodes) == decodes
        await verifier.verify(first)
        assert len(count_decodes) == decodes + 1


@pytest.mark.usefixtures("compact_only")
async def test_full_cache_gives_a_hit_token_one_second_chance(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, cache_size=3)
    async with JWKSTokenVerifier(settings) as verifier:
        used, idle, later, first_new, second_new = (_token(jwks_host, keys.ec) for _ in range(5))
        for token in (used, idle, later, used):  # the oldest, `used`, is hit
            await verifier.verify(token)
        await verifier.verify(first_new)  # eviction spares `used`, clearing its mark; `idle` goes
        await verifier.verify(second_new)  # then `later`
        decodes = len(count_decodes)
        await verifier.verify(later)  # checked afresh; it pushes out `used`, not hit since
        assert len(count_decodes) == decodes + 1
        for token in (first_new, second_new, later):
            await verifier.verify(token)
        assert len(count_decodes) == decodes + 1
        await verifier.verify(used)
        assert len(count_decodes) == decodes + 2
        assert verifier.cached_tokens == 3


@pytest.mark.usefixtures("compact_only")
async def test_full_cache_of_tokens_all_hit_drops_the_oldest(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, cache_size=2)
    async with JWKSTokenVerifier(settings) as verifier:
        first, second, third = (_token(jwks_host, keys.ec) for _ in range(3))
        for token in (first, second, first, second, third):
            await verifier.verify(token)
        decodes = len(count_decodes)
        await verifier.verify(second)
        assert len(count_decodes) == decodes
        await verifier.verify(first)
        assert len(count_decodes) == decodes + 1


async def test_full_cache_of_live_tokens_frees_a_64th_of_its_places_at_once(
    jwks_host: JWKSHost, keys: Keys
) -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, cache_size=128)
    async with JWKSTokenVerifier(settings) as verifier:
        for _ in range(128):
            await verifier.verify(_token(jwks_host, keys.ec))
        assert verifier.cached_tokens == 128
        await verifier.verify(_token(jwks_host, keys.ec))
        assert verifier.cached_tokens == 128 - 2 + 1


async def test_expired_token_met_in_the_cache_is_dropped(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys
) -> None:
    clock = WallClock()
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)
    async with JWKSTokenVerifier(settings, clock=clock) as verifier:
        token = _token(jwks_host, keys.ec, claims={"exp": int(time.time()) + 60})
        await verifier.verify(token)
        assert verifier.cached_tokens == 1
        clock.ahead = 120
        with pytest.raises(TokenRejected, match="token expired"):
            await verifier.verify(token)
        assert verifier.cached_tokens == 0


@pytest.mark.usefixtures("compact_only")
async def test_tokens_with_the_same_claims_never_share_an_entry(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    # ES256 signatures are randomised: two valid tokens of one header and payload, different text.
    claims = {"jti": "one-jti", "iat": int(time.time())}
    first, second = (_token(jwks_host, keys.ec, claims=claims) for _ in range(2))
    assert first != second and first.rsplit(".", 1)[0] == second.rsplit(".", 1)[0]
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        await verifier.verify(first)
        await verifier.verify(second)
        assert verifier.cached_tokens == 2
        for token in (first, second, first, second):
            assert (await verifier.verify(token)).token == token
        assert len(count_decodes) == 2


@pytest.mark.usefixtures("compact_only")
async def test_other_text_for_a_cached_token_is_checked_not_served(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    token = _token(jwks_host, keys.ec)
    header, payload, signature = token.split(".")
    # The same signature bytes spelt another way: 64 bytes fill 86 base64url characters with two
    # bits to spare, and flipping a spare bit changes the text but not the bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelt = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]
    assert base64.urlsafe_b64decode(respelt + "==") == base64.urlsafe_b64decode(signature + "==")
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        await verifier.verify(token)
        for other in (f"{header}.{payload}.{respelt}", f"{header}.{payload}.{signature}x"):
            with pytest.raises(TokenRejected):
                await verifier.verify(other)
        assert verifier.cached_tokens == 1
        assert (await verifier.verify(token)).token == token
        assert len(count_decodes) == 3  # the two impostors were checked in full


@pytest.mark.usefixtures("compact_only")
async def test_compact_cache_hit_gives_the_access_token_a_fresh_check_gives(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    token = _token(jwks_host, keys.ec, claims={"scope": "notes:read notes:write", "sub": "alice"})
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        fresh = await verifier.verify(token)
        hit = await verifier.verify(token)
    assert len(count_decodes) == 1
    assert hit is not fresh and hit.claims is not fresh.claims and hit.scopes is not fresh.scopes
    # Built as pydantic's model_construct builds it: same fields, same pydantic state.
    expected = AccessToken.model_construct(set(AccessToken.model_fields), **fresh.model_dump())
    assert hit == fresh == expected
    assert hit.__getstate__() == expected.__getstate__()
    assert hit.model_fields_set == expected.model_fields_set
    assert hit.token == token and hit.scopes == ["notes:read", "notes:write"]


@pytest.mark.usefixtures("compact_only")
@pytest.mark.parametrize("extra_claims", [10, 70])
async def test_compact_cache_hit_rebuilds_claims_of_any_names_in_order(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None], extra_claims: int
) -> None:
    # Odd names, nested values and many claims come back from a compact entry as they went in.
    odd = {
        'quote"': 1,
        "back\\slash": 2,
        "__class__": 3,
        "values": 4,
        "": 5,
        "naïve": [6],
        "act": {"sub": "a"},
    }
    many = {f"extra_{index}": index for index in range(extra_claims)}
    token = _token(jwks_host, keys.ec, claims={**odd, **many})
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        fresh = await verifier.verify(token)
        hits = [await verifier.verify(token) for _ in range(2)]
    assert len(count_decodes) == 1
    for hit in hits:
        assert hit.claims == fresh.claims and list(hit.claims or {}) == list(fresh.claims or {})
    assert hits[0].claims is not hits[1].claims


@pytest.mark.usefixtures("compact_only")
async def test_tokens_of_more_shapes_than_are_shared_are_still_served_right(
    jwks_host: JWKSHost, keys: Keys, monkeypatch: pytest.MonkeyPatch, count_decodes: list[str | None]
) -> None:
    monkeypatch.setattr(verifier_module, "_MAX_SHARED", 1)
    tokens = [_token(jwks_host, keys.ec, claims={f"only_{index}": index}) for index in range(3)]
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        fresh = [await verifier.verify(token) for token in tokens]
        hits = [await verifier.verify(token) for token in tokens]
    assert len(count_decodes) == 3
    assert [hit.claims for hit in hits] == [token.claims for token in fresh]


@pytest.mark.usefixtures("compact_only")
async def test_tokens_that_differ_in_shared_claims_get_their_own_claims_back(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    # Issuer, tenant, client and scope are kept once for many tokens: never another token's.
    variants = [
        {"tenant_id": "tenant-a", "scope": "notes:read"},
        {"tenant_id": "tenant-b", "scope": "notes:read"},
        {"tenant_id": "tenant-a", "scope": "notes:read notes:write"},
        {"tenant_id": "tenant-a", "scope": "x" * 300},  # too long to share: the token's own
        {"tenant_id": "tenant-a", "user_type": ["not", "a", "string"]},
        {"tenant_id": "tenant-a", "azp": None},
    ]
    tokens = [_token(jwks_host, keys.ec, claims=claims) for claims in variants]
    tokens.append(mint(keys.ec, issuer=jwks_host.url, audience=[AUDIENCE, "http://other.example"]))
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        fresh = [await verifier.verify(token) for token in tokens]
        hits = [await verifier.verify(token) for token in tokens]
    assert len(count_decodes) == len(tokens)
    for hit, first in zip(hits, fresh, strict=True):
        assert hit.claims == first.claims and list(hit.claims or {}) == list(first.claims or {})
        assert hit.scopes == first.scopes and hit.client_id == first.client_id
    assert [hit.claims["tenant_id"] for hit in hits[:2]] == ["tenant-a", "tenant-b"]  # type: ignore[index]


@pytest.fixture
def recent_tier_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verifier_module, "_RECENT_SIZE", 2)


@pytest.mark.usefixtures("recent_tier_of_two")
async def test_token_hit_twice_in_the_main_cache_moves_into_the_recent_tier(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        first, *others = (_token(jwks_host, keys.ec) for _ in range(3))
        for token in (first, *others):  # `first` has left the recent tier of two
            await verifier.verify(token)
        once = await verifier.verify(first)
        twice = await verifier.verify(first)  # the second hit in one epoch: moved into the recent tier
        assert twice is not once
        assert await verifier.verify(first) is twice
    assert len(count_decodes) == 3


@pytest.mark.usefixtures("recent_tier_of_two")
async def test_one_off_hit_in_the_main_cache_leaves_the_recent_tier_alone(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        first, second, third = (_token(jwks_host, keys.ec) for _ in range(3))
        await verifier.verify(first)
        recent = [await verifier.verify(token) for token in (second, third)]
        assert (await verifier.verify(first)).token == first  # one hit on its main entry
        for token, answer in zip((second, third), recent, strict=True):
            assert await verifier.verify(token) is answer  # both still in the recent tier
    assert len(count_decodes) == 3


async def test_oversized_token_is_refused_before_parsing(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost
) -> None:
    with pytest.raises(TokenRejected) as refused:
        await verifier.verify("a" * 16385)
    assert refused.value.description == "token too large"
    assert verifier.jwks.fetches == 0


async def test_token_just_under_the_limit_is_checked(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys
) -> None:
    def padded(size: int) -> str:
        return _token(jwks_host, keys.rsa, claims={"jti": "fixed", "pad": "x" * size})

    low, high = 0, 16384  # the largest padding that keeps the token within the limit
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(padded(middle)) <= 16384 else (low, middle - 1)
    token = padded(low)
    assert 16384 - 4 < len(token) <= 16384
    assert (await verifier.verify(token)).subject == "user-1"


async def test_non_ascii_token_is_malformed(verifier: JWKSTokenVerifier) -> None:
    with pytest.raises(TokenRejected, match="malformed token"):
        await verifier.verify("eyJhbGciOiJSUzI1NiJ9.é.x")


async def test_rejection_message_never_contains_the_token(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys
) -> None:
    token = _token(jwks_host, keys.rsa_other)
    with pytest.raises(TokenRejected) as refused:
        await verifier.verify(token)
    assert token not in str(refused.value) and token not in repr(refused.value)
    assert "user-1" not in str(refused.value)


async def test_max_age_is_honoured(verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys) -> None:
    jwks_host.cache_control = "max-age=300"
    for _ in range(5):
        await verifier.verify(_token(jwks_host, keys.rsa))
    assert verifier.jwks.fetches == 1
    assert jwks_host.fetches == 1


@pytest.mark.parametrize("cache_control", ["max-age=0", "no-store", "no-cache, max-age=600"])
async def test_expired_keys_are_refetched(jwks_host: JWKSHost, keys: Keys, cache_control: str) -> None:
    jwks_host.cache_control = cache_control
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, min_jwks_refresh_interval=0)
    async with JWKSTokenVerifier(settings) as verifier:
        await verifier.verify(_token(jwks_host, keys.rsa))
        # The cached key still serves this token at once; a refresh starts in the background.
        await verifier.verify(_token(jwks_host, keys.rsa))
        assert verifier.jwks.fetches == 2
        await asyncio.to_thread(jwks_host.wait_for_fetches, 2)


async def test_key_rotation_is_picked_up_at_once(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys
) -> None:
    await verifier.verify(_token(jwks_host, keys.rsa))
    for generation in (2, 3):  # two rotations in a row: a refresh that finds its key is never throttled
        new_key = _new_rsa(f"rsa-{generation}")
        jwks_host.keys = [*jwks_host.keys, new_key.public_jwk()]
        assert (await verifier.verify(_token(jwks_host, new_key))).subject == "user-1"
    assert (await verifier.verify(_token(jwks_host, keys.rsa))).subject == "user-1"
    assert jwks_host.fetches == 3


async def test_flood_of_unknown_kids_costs_a_handful_of_fetches(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys
) -> None:
    tokens = [_token(jwks_host, keys.rsa, header={"kid": uuid.uuid4().hex}) for _ in range(1000)]

    async def refused(token: str) -> str:
        with pytest.raises(TokenRejected) as rejection:
            await verifier.verify(token)
        return rejection.value.description

    # Half at once (single flight), half one after another (the refresh interval).
    assert set(await asyncio.gather(*(refused(t) for t in tokens[:500]))) == {"unknown signing key"}
    for token in tokens[500:]:
        assert await refused(token) == "unknown signing key"
    assert jwks_host.fetches == 1
    assert (await verifier.verify(_token(jwks_host, keys.rsa))).subject == "user-1"


async def test_jwks_outage_keeps_cached_keys_working(jwks_host: JWKSHost, keys: Keys) -> None:
    jwks_host.cache_control = "max-age=0"
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, min_jwks_refresh_interval=0)
    async with JWKSTokenVerifier(settings) as verifier:
        await verifier.verify(_token(jwks_host, keys.rsa))
        jwks_host.failing = True
        await verifier.verify(_token(jwks_host, keys.ec))
        await asyncio.to_thread(jwks_host.wait_for_fetches, 2)  # the refresh failed...
        for key in (keys.rsa, keys.ec, keys.ed):  # ...and every cached key still works
            assert (await verifier.verify(_token(jwks_host, key))).subject == "user-1"
        with pytest.raises(TokenRejected, match="unknown signing key"):
            await verifier.verify(_token(jwks_host, keys.rsa, header={"kid": "rsa-9"}))


async def test_keys_stale_beyond_the_limit_are_dropped(jwks_host: JWKSHost, keys: Keys) -> None:
    jwks_host.cache_control = "max-age=0"
    settings = VerifierSettings(
        audience=AUDIENCE, issuer=jwks_host.url, min_jwks_refresh_interval=0, jwks_stale_if_error=0
    )
    async with JWKSTokenVerifier(settings) as verifier:
        await verifier.verify(_token(jwks_host, keys.rsa))
        jwks_host.failing = True
        with pytest.raises(SigningKeysUnavailable):
            await verifier.verify(_token(jwks_host, keys.rsa))


async def test_failed_fetch_is_not_retried_at_once(jwks_host: JWKSHost, keys: Keys) -> None:
    jwks_host.failing = True
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        for _ in range(20):
            with pytest.raises(SigningKeysUnavailable):
                await verifier.verify(_token(jwks_host, keys.rsa))
    assert jwks_host.fetches == 1


async def test_discovery_naming_another_issuer_is_not_trusted(jwks_host: JWKSHost, keys: Keys) -> None:
    jwks_host.discovery_issuer = "http://127.0.0.1:1"
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        with pytest.raises(SigningKeysUnavailable):
            await verifier.verify(_token(jwks_host, keys.rsa))
    assert jwks_host.fetches == 0


async def test_explicit_jwks_url_without_issuer(jwks_host: JWKSHost, keys: Keys) -> None:
    settings = VerifierSettings(audience=AUDIENCE, jwks_url=jwks_host.jwks_url)
    async with JWKSTokenVerifier(settings) as verifier:
        access = await verifier.verify(mint(keys.rsa, issuer="http://127.0.0.1:7", audience=AUDIENCE))
    assert access.claims is not None and access.claims["iss"] == "http://127.0.0.1:7"


async def test_single_key_without_kid_serves_tokens_without_kid(jwks_host: JWKSHost, keys: Keys) -> None:
    jwks_host.keys = [{k: v for k, v in keys.rsa.public_jwk().items() if k != "kid"}]
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        assert (await verifier.verify(_token(jwks_host, keys.rsa, header={"kid": None}))).subject == "user-1"


@pytest.mark.parametrize(
    "unusable",
    [{"use": "enc"}, {"key_ops": ["encrypt"]}, {"alg": "RS512"}],
    ids=["use-enc", "key-ops-encrypt", "alg-pinned-to-another"],
)
async def test_keys_not_meant_for_this_signature_are_not_used(
    jwks_host: JWKSHost, keys: Keys, unusable: dict[str, Any]
) -> None:
    jwks_host.keys = [{**keys.rsa.public_jwk(), **unusable}, keys.ec.public_jwk()]
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        with pytest.raises(TokenRejected):
            await verifier.verify(_token(jwks_host, keys.rsa))


async def test_oversized_jwks_is_refused(jwks_host: JWKSHost, keys: Keys) -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, max_jwks_bytes=200)
    async with JWKSTokenVerifier(settings) as verifier:
        with pytest.raises(SigningKeysUnavailable):
            await verifier.verify(_token(jwks_host, keys.rsa))


async def test_allow_list_is_configurable(jwks_host: JWKSHost, keys: Keys) -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, algorithms=("EdDSA",))
    async with JWKSTokenVerifier(settings) as verifier:
        assert (await verifier.verify(_token(jwks_host, keys.ed))).subject == "user-1"
        with pytest.raises(TokenRejected, match="algorithm not allowed"):
            await verifier.verify(_token(jwks_host, keys.rsa))


async def test_cached_token_is_forgotten_once_its_key_is_withdrawn(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    held = _token(jwks_host, keys.rsa)
    await verifier.verify(held)
    await verifier.verify(held)
    assert len(count_decodes) == 1  # remembered
    # The issuer rotates and stops publishing rsa-1; a token for the new key makes us refresh.
    successor = _new_rsa("rsa-2")
    jwks_host.keys = [successor.public_jwk()]
    assert (await verifier.verify(_token(jwks_host, successor))).subject == "user-1"
    with pytest.raises(TokenRejected, match="unknown signing key"):
        await verifier.verify(held)


async def test_cached_token_is_forgotten_when_its_kid_gets_other_material(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys
) -> None:
    held = _token(jwks_host, keys.rsa)
    await verifier.verify(held)
    # Same kid, another key (rsa_other is "rsa-1" too), plus a new kid that forces a refresh.
    successor = _new_rsa("rsa-2")
    jwks_host.keys = [keys.rsa_other.public_jwk(), successor.public_jwk()]
    await verifier.verify(_token(jwks_host, successor))
    with pytest.raises(TokenRejected, match="bad signature"):
        await verifier.verify(held)


async def test_cached_token_is_rechecked_once_its_key_set_is_stale(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    # max-age=0: the set that vouched for the key is stale as soon as it arrives, so a remembered
    # token must not be served from the cache; it is checked again (which starts a refresh).
    jwks_host.cache_control = "max-age=0"
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, min_jwks_refresh_interval=0)
    async with JWKSTokenVerifier(settings) as verifier:
        token = _token(jwks_host, keys.rsa)
        await verifier.verify(token)
        await verifier.verify(token)
        assert len(count_decodes) == 2
        assert verifier.jwks.fetches == 2


async def test_cached_token_is_served_while_its_key_set_is_fresh(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    token = _token(jwks_host, keys.rsa)
    for _ in range(3):
        await verifier.verify(token)
    assert len(count_decodes) == 1
    assert verifier.jwks.fetches == 1


@pytest.mark.parametrize(
    ("claims", "drop", "accepted"),
    [
        ({"iat": 1_000_000, "exp": 1_000_000 + 86400}, (), True),
        ({"iat": 1_000_000, "exp": 1_000_000 + 86401}, (), False),
        ({"iat": 1_000_000, "exp": 1_000_000 + 10 * 365 * 86400}, (), False),
        ({"exp": 1_000_000 + 2 * 86400}, ("iat",), False),  # no iat: counted from now
    ],
    ids=["exactly-a-day", "a-day-and-a-second", "ten-years", "no-iat-two-days"],
)
async def test_token_lifetime_is_capped(
    jwks_host: JWKSHost, keys: Keys, claims: dict[str, int], drop: tuple[str, ...], accepted: bool
) -> None:
    now = int(time.time())
    shifted = {name: value - 1_000_000 + now for name, value in claims.items()}
    settings = VerifierSettings(
        audience=AUDIENCE, issuer=jwks_host.url, required_claims=("iss", "sub", "aud", "exp")
    )
    async with JWKSTokenVerifier(settings) as verifier:
        token = _token(jwks_host, keys.rsa, claims={"nbf": now, **shifted}, drop=drop)
        if accepted:
            assert (await verifier.verify(token)).subject == "user-1"
        else:
            with pytest.raises(TokenRejected, match="token lifetime too long"):
                await verifier.verify(token)


async def test_token_lifetime_cap_is_configurable(jwks_host: JWKSHost, keys: Keys) -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, max_token_lifetime=300)
    async with JWKSTokenVerifier(settings) as verifier:
        now = int(time.time())
        assert await verifier.verify(_token(jwks_host, keys.rsa, claims={"iat": now, "exp": now + 300}))
        with pytest.raises(TokenRejected, match="token lifetime too long"):
            await verifier.verify(_token(jwks_host, keys.rsa, claims={"iat": now, "exp": now + 301}))


def _raw_jws(key: SigningKey, header: str, payload: str) -> str:
    """A JWS whose header and payload are exactly this JSON text, signed by `key`."""

    def encoded(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    signing_input = f"{encoded(header)}.{encoded(payload)}"
    algorithm = jwt.get_algorithm_by_name(key.alg)
    signature = algorithm.sign(signing_input.encode(), key.private_key)
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _claims_text(host: JWKSHost, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": host.url, "sub": "user-1", "aud": AUDIENCE, "iat": now, "exp": now + 300, **overrides}
    return json.dumps(claims)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_huge_time_values_are_invalid_not_a_crash(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys, claim: str
) -> None:
    for value in (10**400, -(10**400), 2**64):
        with pytest.raises(TokenRejected, match=f"invalid {claim} claim"):
            await verifier.verify(_token(jwks_host, keys.rsa, claims={claim: value}))


async def test_huge_time_value_gets_401_from_the_server(server: RunningServer, keys: Keys) -> None:
    token = mint(keys.rsa, issuer=server.issuer, audience=server.resource_url, claims={"exp": 10**400})
    async with httpx.AsyncClient() as http:
        reply = await http.post(server.resource_url, headers={"Authorization": f"Bearer {token}"}, json={})
    assert reply.status_code == 401
    assert reply.json()["error_description"] == "invalid exp claim"


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        ('{"alg":"none","kid":"rsa-1","typ":"JWT","alg":"RS256"}', None),
        ('{"alg":"RS256","kid":"rsa-1","kid":"rsa-1","typ":"JWT"}', None),
        ('{"alg":"RS256","kid":"rsa-1","typ":"JWT"}', "two-subs"),
        ('{"alg":"RS256","kid":"rsa-1","typ":"JWT"}', "nested"),
    ],
    ids=["header-alg", "header-kid-twice", "payload-sub", "payload-nested"],
)
async def test_duplicate_members_are_refused(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys, header: str, payload: str | None
) -> None:
    body = _claims_text(jwks_host)
    if payload == "two-subs":
        body = body[:-1] + ', "sub": "admin"}'
    elif payload == "nested":
        body = body[:-1] + ', "act": {"sub": "a", "sub": "b"}}'
    with pytest.raises(TokenRejected, match="duplicate member in token"):
        await verifier.verify(_raw_jws(keys.rsa, header, body))
    # The same token without the repetition is fine: the refusal is about the duplicate.
    assert (
        await verifier.verify(
            _raw_jws(keys.rsa, '{"alg":"RS256","kid":"rsa-1","typ":"JWT"}', _claims_text(jwks_host))
        )
    ).subject == "user-1"


async def test_duplicate_header_member_is_refused_before_any_key_lookup(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        token = _raw_jws(keys.rsa, '{"alg":"RS256","alg":"RS256","kid":"rsa-1"}', _claims_text(jwks_host))
        with pytest.raises(TokenRejected, match="duplicate member in token"):
            await verifier.verify(token)
    assert count_decodes == []
    assert jwks_host.fetches == 0


@pytest.mark.parametrize("tenant", [7, ["acme"], {"id": "acme"}, True])
async def test_tenant_id_must_be_a_string(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys, tenant: Any
) -> None:
    with pytest.raises(TokenRejected, match="invalid tenant_id claim"):
        await verifier.verify(_token(jwks_host, keys.rsa, claims={"tenant_id": tenant}))


@pytest.mark.parametrize("subject", ["", " ", "\t\n", "alice\x00", "ali\nce", "\x1b[31malice", "\u2028"])
async def test_blank_or_unprintable_subject_is_refused(
    verifier: JWKSTokenVerifier, jwks_host: JWKSHost, keys: Keys, subject: str
) -> None:
    with pytest.raises(TokenRejected, match="invalid sub claim"):
        await verifier.verify(_token(jwks_host, keys.rsa, claims={"sub": subject}))


async def test_discovery_naming_a_plain_http_jwks_off_loopback_is_not_followed(
    jwks_host: JWKSHost, keys: Keys
) -> None:
    jwks_host.discovery_jwks_uri = "http://keys.example/jwks.json"
    async with JWKSTokenVerifier(VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url)) as verifier:
        with pytest.raises(SigningKeysUnavailable):
            await verifier.verify(_token(jwks_host, keys.rsa))
    assert jwks_host.fetches == 0


async def test_a_subject_qualifier_tells_apart_two_idps_users_who_share_a_sub(
    jwks_host: JWKSHost, keys: Keys, count_decodes: list[str | None]
) -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, subject_qualifier="idp")
    tokens = [
        _token(jwks_host, keys.ec, claims={"sub": "u-1", "idp": idp}) for idp in ("https://a", "https://b")
    ]
    async with JWKSTokenVerifier(settings) as verifier:
        fresh = [await verifier.verify(token) for token in tokens]
        hits = [await verifier.verify(token) for token in tokens]
    assert [access.subject for access in fresh] == ['["https://a","u-1"]', '["https://b","u-1"]']
    assert [access.subject for access in hits] == [access.subject for access in fresh]
    assert len(count_decodes) == 2  # the hits came from the cache, qualified all the same
    # What the mcp SDK binds a session to: no longer one principal for the two people.
    assert principal_components(fresh[0]) != principal_components(fresh[1])
    assert [(access.claims or {})["sub"] for access in fresh] == ["u-1", "u-1"]  # claims unchanged


@pytest.mark.parametrize(
    "idp", [None, 7, "", " ", "a\nb"], ids=["missing", "number", "empty", "blank", "newline"]
)
async def test_a_token_without_a_usable_qualifier_is_refused(
    jwks_host: JWKSHost, keys: Keys, idp: object
) -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=jwks_host.url, subject_qualifier="idp")
    claims: dict[str, Any] = {"sub": "u-1"} if idp is None else {"sub": "u-1", "idp": idp}
    async with JWKSTokenVerifier(settings) as verifier:
        with pytest.raises(TokenRejected, match="invalid idp claim"):
            await verifier.verify(_token(jwks_host, keys.ec, claims=claims))


@pytest.mark.parametrize("qualifier", ["", "sub"])
def test_a_subject_qualifier_must_name_another_claim(qualifier: str) -> None:
    with pytest.raises(ValueError, match="subject_qualifier"):
        VerifierSettings(audience=AUDIENCE, issuer="http://127.0.0.1:9000", subject_qualifier=qualifier)
