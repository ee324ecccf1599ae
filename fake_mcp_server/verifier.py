"""`JWKSTokenVerifier`: checks a Bearer JWT against the issuer's JWKS, for any MCP server.

It implements the mcp SDK's `TokenVerifier` protocol, so it plugs into
`MCPServer(token_verifier=..., auth=AuthSettings(...))`; `verify()` also says why a token
was refused, for servers that put the reason into their RFC 6750 challenge.

The token is parsed once: the compact form is checked with one regular expression, the header
is checked before any key is looked up, the signature is checked (with the issuer's key, through
PyJWT's `PyJWK` and its algorithm objects, i.e. `cryptography`) before the payload is decoded,
and the claims are then checked here, explicitly. This costs about half of PyJWT's `jwt.decode`,
whose pure-Python base64 validation outweighs the RSA signature check itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx
from mcp.server.auth.provider import AccessToken

from fake_mcp_server.errors import TokenRejected
from fake_mcp_server.jwks import JWKSCache, KeyTrust
from fake_mcp_server.settings import VerifierSettings, same_issuer

__all__ = ["JWKSTokenVerifier"]

logger = logging.getLogger(__name__)

# JWS compact serialization, unpadded base64url (RFC 7515 §7.1); the signature may be empty
# only to be refused as a bad signature, not as garbage.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

# Header parameters that carry or point at a key chosen by whoever made the token. The only keys
# we trust are the issuer's, from its JWKS, so a token that offers its own is refused outright.
_TOKEN_SUPPLIED_KEY_HEADERS = ("jwk", "jku", "x5u", "x5c")

# Distinct JOSE headers whose checks are remembered; an issuer uses a handful (one per key).
_MAX_REMEMBERED_HEADERS = 256
_MAX_REMEMBERED_HEADER_CHARS = 512


def _decoded(segment: str) -> bytes:
    """A base64url segment (alphabet already checked), refusing non-canonical spellings."""
    if len(segment) % 4 == 1:
        raise TokenRejected("malformed token")
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=") != segment.encode("ascii"):
        raise TokenRejected("malformed token")
    return data


# Claims whose values repeat from token to token: stored once, shared by every cached token.
_SHARED_CLAIM_VALUES = frozenset({"iss", "aud", "azp", "client_id", "tenant_id", "scope", "user_type"})


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if a member name repeats (RFC 7515 §5.2, RFC 7519 §4): parsers
    disagree on which one wins, and `{"alg":"none",...,"alg":"RS256"}` lives in that gap.

    Member names are interned, so cached tokens share them instead of a copy each.
    """
    if len({name for name, _ in pairs}) != len(pairs):
        raise TokenRejected("duplicate member in token")
    return {
        sys.intern(name): sys.intern(value) if _is_shared_value(name, value) else value
        for name, value in pairs
    }


def _is_shared_value(name: str, value: Any) -> bool:
    return name in _SHARED_CLAIM_VALUES and isinstance(value, str) and len(value) <= 256


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_decoded(segment), object_pairs_hook=_members)
    except (binascii.Error, ValueError, RecursionError):
        raise TokenRejected("malformed token") from None
    if not isinstance(value, dict):
        raise TokenRejected("malformed token")
    return value


class _Verified:
    """A token that passed every check, as the cache keeps it: what its `AccessToken` is made of,
    except the token text (the caller presents that again on every hit).

    It is served until `expires_at` (its `exp` rounded down), and only while `trust` says the
    issuer still vouches for the key that verified it. The claims are kept in two dicts:
    `claims_template`, all of them in their order with the token's own values blanked (None),
    shared by every token with the same names and the same issuer, audience, client, tenant,
    scope and user type; and `own_claims`, the token's own values (`sub`, `jti`, the times, ...).
    The template overlaid with `own_claims` is the claims dict again, in the token's order, at a
    third of the cost of building it from a tuple of names and one of values.

    `seen` is the epoch of the entry's last hit (see `JWKSTokenVerifier._count_hit`): None until
    it is hit, and again once an eviction pass has gone by it (see `JWKSTokenVerifier._evict`).
    """

    __slots__ = (
        "claims_template",
        "client_id",
        "expires_at",
        "own_claims",
        "scopes",
        "seen",
        "subject",
        "trust",
    )

    def __init__(
        self,
        expires_at: int,
        trust: KeyTrust,
        access_token: AccessToken,
        claims_template: dict[str, Any],
        own_claims: dict[str, Any],
        scopes: tuple[str, ...],
    ) -> None:
        self.expires_at = expires_at
        self.trust = trust
        self.client_id = access_token.client_id
        self.scopes = scopes
        self.subject = access_token.subject
        self.claims_template = claims_template
        self.own_claims = own_claims
        self.seen: object = None

    def access_token(self, token: str, resource: str) -> AccessToken:
        """A new `AccessToken` for `token`, the text this entry was found by."""
        return _access_token(
            {
                "token": token,
                "client_id": self.client_id,
                "scopes": list(self.scopes),
                "expires_at": self.expires_at,
                "resource": resource,
                "subject": self.subject,
                # The template has every name already: the own values go into their places.
                "claims": {**self.claims_template, **self.own_claims},
            }
        )


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    """The `__set__` of the descriptor that holds attribute `name` of an AccessToken."""
    descriptor = next(vars(cls)[name] for cls in AccessToken.__mro__ if name in vars(cls))
    return descriptor.__set__  # type: ignore[no-any-return]


# Every AccessToken we build sets all its fields; pydantic would give each its own copy of this
# set (some 700 bytes). Field assignment only ever adds a name that is already in it, so one set
# serves them all.
_ACCESS_TOKEN_FIELDS = set(AccessToken.model_fields)
_new_object = object.__new__
# The descriptors' own setters: a third quicker than object.__setattr__, which looks each one up.
_set_dict = _slot_setter("__dict__")
_set_fields_set = _slot_setter("__pydantic_fields_set__")
_set_extra = _slot_setter("__pydantic_extra__")
_set_private = _slot_setter("__pydantic_private__")


def _access_token(fields: dict[str, Any]) -> AccessToken:
    """An `AccessToken` of `fields` (every field, each already checked), built exactly as pydantic's
    `model_construct` builds one, at about an eighth of its cost: a cache hit builds one, and
    `model_construct` loops over the model's fields and their aliases on every call.

    tests/server/test_server_verifier.py checks that the two agree on this pydantic version.
    """
    built = _new_object(AccessToken)
    _set_dict(built, fields)
    _set_fields_set(built, _ACCESS_TOKEN_FIELDS)
    _set_extra(built, None)
    _set_private(built, None)
    return built


# Cache keys: SHA-256 of the token text. A different token could only find another's entry by a
# second preimage of SHA-256. The digest (32 bytes) is kept instead of the token text (600 and
# more), and OpenSSL's SHA-256 takes less time than BLAKE2b here.
_digest = hashlib.sha256

# Recently used tokens kept in full beside the compact entries (some 1.6 KB each with their text).
_RECENT_SIZE = 256

# A full cache of live tokens evicts this fraction of its entries at once (see _evict).
_EVICT_FRACTION = 64

# Distinct claims templates (see _Verified) and distinct scope tuples shared between cached
# tokens; an issuer mints a handful of each.
_MAX_SHARED = 256
_Shared = TypeVar("_Shared")


# The largest NumericDate we take: a float counts whole seconds exactly up to here, and no real
# token comes near (it is some 285 million years away). Larger integers would overflow floats.
_MAX_TIME = 2**53


def _is_time(value: Any) -> bool:
    """A NumericDate (RFC 7519 §2): a finite number of sane size, not a string, not a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -_MAX_TIME <= value <= _MAX_TIME  # False for nan and ±inf too


def _normalised_type(value: str) -> str:
    return value.lower().removeprefix("application/")


class JWKSTokenVerifier:
    """Verify JWT access/ID tokens signed with the issuer's published keys.

    Use `async with` (or call `aclose()`) to release the HTTP client it owns. Pass
    `http_client` to use your own (it is then yours to close). `clock` gives the time that `exp`,
    `nbf` and `iat` are checked against, in seconds since the epoch.
    """

    def __init__(
        self,
        settings: VerifierSettings,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(timeout=settings.http_timeout, follow_redirects=False)
        self.jwks = JWKSCache(settings, self._client, on_withdrawn=self._forget_withdrawn)
        self._algorithms = frozenset(settings.algorithms)
        self._accepted_types = frozenset(_normalised_type(t) for t in settings.accepted_types)
        self._checked_headers: dict[str, dict[str, Any]] = {}
        # Tokens that passed every check, by the SHA-256 of their text, in the order eviction
        # passes go through them (see _evict).
        self._verified: dict[bytes, _Verified] = {}
        # A few of them again, by their text, with the AccessToken built: the most recently used
        # of those just verified or hit twice in a short while (see _count_hit). A hit here costs
        # neither the SHA-256 nor building the AccessToken. Each is served only while its entry
        # in `_verified` is (and by that entry's checks).
        self._recent: OrderedDict[str, tuple[AccessToken, bytes, _Verified]] = OrderedDict()
        self._recent_size = min(settings.cache_size, _RECENT_SIZE)
        # No remembered token expires before this moment (a lower bound: entries that leave early
        # do not raise it); a full cache sweeps out the expired ones only once it has passed.
        self._earliest_expiry = math.inf
        self._shared_scopes: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._claims_templates: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
        # Hits on main entries, counted in epochs (see _count_hit).
        self._epoch = object()
        self._epoch_hits = 0

    @property
    def cached_tokens(self) -> int:
        """How many verified tokens are remembered now (a number for metrics and tests)."""
        return len(self._verified)

    def __repr__(self) -> str:
        return f"JWKSTokenVerifier(audience={self.settings.audience!r}, issuer={self.settings.issuer!r})"

    async def __aenter__(self) -> JWKSTokenVerifier:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.jwks.aclose()
        if self._owns_client:
            await self._client.aclose()

    async def check_issuer(self) -> int:
        """Fetch the issuer's keys now (discovery, then JWKS); the number of usable keys.

        Raises `IssuerCheckFailed` with a one-line reason: call it at start-up so a wrong, dead
        or mistyped issuer URL is reported once, instead of as a 503 on every request.
        """
        return await self.jwks.check()

    async def verify_token(self, token: str) -> AccessToken | None:
        """The mcp SDK `TokenVerifier` protocol: the verified token, or None if it is refused."""
        try:
            return await self.verify(token)
        except TokenRejected as exc:
            logger.info("bearer token refused: %s", exc.description)
            return None

    async def verify(self, token: str) -> AccessToken:
        """The verified token, or `TokenRejected` saying why not (`SigningKeysUnavailable` if no keys)."""
        if not isinstance(token, str):
            raise TokenRejected("malformed token")
        if len(token) > self.settings.max_token_bytes:
            raise TokenRejected("token too large")
        if not token.isascii():
            raise TokenRejected("malformed token")
        recent = self._recent.get(token)
        if recent is not None:
            access_token, key, remembered = recent
            if self._servable(remembered) and self._verified.get(key) is remembered:
                remembered.seen = self._epoch
                self._recent.move_to_end(token)
                return access_token
            del self._recent[token]
        key = _digest(token.encode("ascii")).digest()
        remembered = self._verified.get(key)
        if remembered is not None:
            if self._servable(remembered):
                access_token = remembered.access_token(token, self.settings.audience)
                self._count_hit(token, access_token, key, remembered)
                return access_token
            # Expired, or the key set that vouched for its key has gone stale: check it afresh,
            # which refreshes the keys (or finds the key withdrawn).
            del self._verified[key]
        access_token, trust = await self._verify_fresh(token)
        remembered = self._remember(key, access_token, trust)
        if remembered is not None:
            self._keep_recent(token, access_token, key, remembered)
        return access_token

    def _servable(self, remembered: _Verified) -> bool:
        """Whether a remembered token may be answered from the cache: unexpired, its key still vouched for."""
        return self._clock() < remembered.expires_at and self.jwks.clock() < remembered.trust.confirmed_until

    def _count_hit(self, token: str, access_token: AccessToken, key: bytes, remembered: _Verified) -> None:
        """Count a hit on a main entry: the second one within an epoch moves the token into the recent tier.

        An epoch lasts as many main-entry hits as the recent tier has places. A token met once in
        a long while (one of thousands of users going round) would only push another out of the
        recent tier before its own next use, and pay for the move (and the garbage collector for
        the longer-lived objects) on every hit.
        """
        if remembered.seen is self._epoch:
            self._keep_recent(token, access_token, key, remembered)
            return
        remembered.seen = self._epoch
        self._epoch_hits += 1
        if self._epoch_hits >= self._recent_size:
            self._epoch = object()
            self._epoch_hits = 0

    def _keep_recent(self, token: str, access_token: AccessToken, key: bytes, remembered: _Verified) -> None:
        self._recent[token] = (access_token, key, remembered)
        if len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    async def _verify_fresh(self, token: str) -> tuple[AccessToken, KeyTrust]:
        if _COMPACT_JWS.fullmatch(token) is None:
            raise TokenRejected("malformed token")
        header_segment, payload_segment, signature_segment = token.split(".")
        header = self._checked_header(header_segment)
        alg = header["alg"]
        key, trust = await self.jwks.key_for(header.get("kid"), alg)
        signature = _decoded(signature_segment)
        signing_input = token[: len(header_segment) + 1 + len(payload_segment)].encode("ascii")
        if not key.Algorithm.verify(signing_input, key.key, signature):
            raise TokenRejected("bad signature")
        claims = _json_object(payload_segment)
        self._check_claims(claims)
        return self._verified_access_token(token, claims), trust

    def _checked_header(self, segment: str) -> dict[str, Any]:
        """The JOSE header, if it may go on to key lookup and signature verification."""
        # One issuer key signs many tokens with a byte-identical header: check each header once.
        header = self._checked_headers.get(segment)
        if header is not None:
            return header
        header = self._check_header(segment)
        if len(segment) <= _MAX_REMEMBERED_HEADER_CHARS:
            if len(self._checked_headers) >= _MAX_REMEMBERED_HEADERS:
                self._checked_headers.clear()
            self._checked_headers[segment] = header
        return header

    def _check_header(self, segment: str) -> dict[str, Any]:
        header = _json_object(segment)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise TokenRejected("algorithm not allowed")
        if any(name in header for name in _TOKEN_SUPPLIED_KEY_HEADERS):
            raise TokenRejected("token-supplied keys are not accepted")
        if "crit" in header:
            # We understand no JWS extension, so any critical one makes the token unacceptable
            # (RFC 7515 §4.1.11).
            raise TokenRejected("unsupported critical header")
        if header.get("b64", True) is not True:
            # An unencoded payload (RFC 7797) must be declared critical, and we accept no crit.
            raise TokenRejected("malformed token")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed token")
        if self._accepted_types:
            typ = header.get("typ")
            if not isinstance(typ, str) or _normalised_type(typ) not in self._accepted_types:
                raise TokenRejected("unexpected token type")
        return header

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """RFC 7519 §4.1 checks, with the configured leeway; raises `TokenRejected` on the first failure."""
        settings = self.settings
        for name in settings.required_claims:
            if claims.get(name) is None:
                raise TokenRejected(f"missing {name} claim")
        now = self._clock()
        for name in ("exp", "nbf", "iat"):
            value = claims.get(name)
            if value is not None and not _is_time(value):
                raise TokenRejected(f"invalid {name} claim")
        exp = claims.get("exp")
        if exp is not None and exp <= now - settings.leeway:
            raise TokenRejected("token expired")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and value > now + settings.leeway:
                raise TokenRejected("token not yet valid")
        # A long-lived token outlives any revocation; without iat, count from now.
        issued_at = claims.get("iat")
        if exp is not None and exp - (now if issued_at is None else issued_at) > settings.max_token_lifetime:
            raise TokenRejected("token lifetime too long")
        if settings.issuer is not None:
            issuer = claims.get("iss")
            if issuer is None:
                raise TokenRejected("missing iss claim")
            if issuer != settings.issuer and not same_issuer(settings.issuer, issuer):
                raise TokenRejected("wrong issuer")
        audience = claims.get("aud")
        if not audience:
            raise TokenRejected("missing aud claim")
        audiences = [audience] if isinstance(audience, str) else audience
        if (
            not isinstance(audiences, list)
            or settings.audience not in audiences
            or not all(isinstance(entry, str) for entry in audiences)
        ):
            raise TokenRejected("wrong audience")
        subject = claims.get("sub")
        # Servers key users by (iss, sub): a blank or unprintable subject is nobody to key by.
        if subject is not None and (
            not isinstance(subject, str) or not subject.strip() or not subject.isprintable()
        ):
            raise TokenRejected("invalid sub claim")
        tenant = claims.get("tenant_id")
        if tenant is not None and not isinstance(tenant, str):
            raise TokenRejected("invalid tenant_id claim")
        jti = claims.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise TokenRejected("invalid jti claim")
        qualifier = settings.subject_qualifier
        if qualifier is not None:
            vouched_by = claims.get(qualifier)
            if not isinstance(vouched_by, str) or not vouched_by.strip() or not vouched_by.isprintable():
                raise TokenRejected(f"invalid {qualifier} claim")

    def _subject(self, claims: dict[str, Any]) -> str | None:
        subject = claims.get("sub")
        qualifier = self.settings.subject_qualifier
        if subject is None or qualifier is None:
            return subject
        return json.dumps([claims[qualifier], subject], separators=(",", ":"))

    def _verified_access_token(self, token: str, claims: dict[str, Any]) -> AccessToken:
        client_id = claims.get("client_id", claims.get("azp", ""))
        if not isinstance(client_id, str):
            raise TokenRejected("invalid client_id claim")
        expires_at = claims.get("exp")
        # Every field was checked above (claims are a JSON object, `sub` a string or absent).
        return _access_token(
            {
                "token": token,
                "client_id": client_id,
                "scopes": _scopes(claims),
                "expires_at": int(expires_at) if expires_at is not None else None,
                "resource": self.settings.audience,
                "subject": self._subject(claims),
                "claims": claims,
            }
        )

    def _remember(self, key: bytes, access_token: AccessToken, trust: KeyTrust) -> _Verified | None:
        expires_at = access_token.expires_at
        now = self._clock()
        # Only tokens with an exp still ahead: a cached answer must never outlive the token.
        if self.settings.cache_size == 0 or expires_at is None or expires_at <= now:
            return None
        if len(self._verified) >= self.settings.cache_size:
            self._make_room(now)
        claims = access_token.claims or {}
        own_claims = {name: value for name, value in claims.items() if not _is_shared_value(name, value)}
        # Template values are strings and None: comparable, so equal templates are found by them.
        template = {name: None if name in own_claims else value for name, value in claims.items()}
        template = _interned(self._claims_templates, tuple(template.items()), template)
        scopes = tuple(access_token.scopes)
        scopes = _interned(self._shared_scopes, scopes, scopes)
        remembered = _Verified(expires_at, trust, access_token, template, own_claims, scopes)
        self._verified[key] = remembered
        self._earliest_expiry = min(self._earliest_expiry, expires_at)
        return remembered

    def _make_room(self, now: float) -> None:
        """Make room in the full cache: every expired entry if one may have expired, else by eviction."""
        if now >= self._earliest_expiry:
            expired = [
                key
                for key, entry in self._verified.items()
                if entry.expires_at <= now or entry.trust.withdrawn
            ]
            for key in expired:
                del self._verified[key]
            self._earliest_expiry = min(
                (entry.expires_at for entry in self._verified.values()), default=math.inf
            )
        if len(self._verified) >= self.settings.cache_size:
            self._evict()

    def _evict(self) -> None:
        """Evict the oldest entries not hit since the last pass went by them (CLOCK, second chance).

        An entry that was hit (`seen` set) loses its mark and goes to the end instead, so a hit
        costs setting one attribute rather than moving the entry, and the main table is a plain
        dict, smaller than an LRU's. A pass frees 1/64 of the places at once (at least one): a
        dict leaves a hole where an entry was deleted, and each pass walks past the holes at its
        front, so evicting one entry per pass would walk past thousands for each.
        """
        verified = self._verified
        wanted = max(1, len(verified) // _EVICT_FRACTION)
        victims: list[bytes] = []
        spared: list[bytes] = []
        for key, entry in verified.items():
            if entry.seen is None:
                victims.append(key)
                if len(victims) == wanted:
                    break
            else:
                entry.seen = None
                spared.append(key)
        # Every entry had been hit: the oldest go after all, their marks now cleared.
        shortfall = wanted - len(victims)
        victims += spared[:shortfall]
        for key in victims:
            del verified[key]
        for key in spared[shortfall:]:
            verified[key] = verified.pop(key)

    def _forget_withdrawn(self) -> None:
        """Drop every remembered token whose key the issuer no longer publishes."""
        withdrawn = [key for key, entry in self._verified.items() if entry.trust.withdrawn]
        for key in withdrawn:
            del self._verified[key]


def _interned(table: dict[Any, _Shared], key: Any, value: _Shared) -> _Shared:
    """The value already kept under `key`, so that cached tokens share one copy; else `value`,
    kept too while `table` has room (past the few shapes an issuer mints, each token holds its own)."""
    kept = table.get(key)
    if kept is not None:
        return kept
    if len(table) < _MAX_SHARED:
        table[key] = value
    return value


def _scopes(claims: dict[str, Any]) -> list[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, list) and all(isinstance(item, str) for item in scp):
        return list(scp)
    if isinstance(scp, str):
        return scp.split()
    return []
