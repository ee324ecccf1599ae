"""The issuer's signing keys: found through discovery, cached per Cache-Control, refreshed sparingly.

Refresh rules, in one place:
- the first use fetches; after that the set is cached for the response's `max-age`
  (clamped to [min_jwks_refresh_interval, max_jwks_max_age]);
- once expired, a token whose key is still in the set is checked with it at once while one
  refresh runs in the background (stale-while-revalidate);
- an unknown `kid` waits for one refresh started after the token arrived (and for the one in
  flight, if any, which may predate the kid's publication); if that refresh does not bring the
  kid, or any fetch fails, nothing is fetched again for `min_jwks_refresh_interval` (a flood of
  made-up kids cannot make us hammer the issuer, a real rotation is picked up at once);
- at most one fetch is in flight (single flight); everyone who needs it waits on that one, for
  at most `jwks_fetch_deadline` (discovery and JWKS together), then it counts as failed;
- when a fetch fails the cached keys keep serving for up to `jwks_stale_if_error` past expiry.

Each published key has a `KeyTrust`, shared by every token it verified: it says until when the
last fetched set vouched for the key. A refresh that still lists the key (with the same
material) extends it; one that drops or changes it withdraws it for good, and the verifier then
forgets the tokens that key verified.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from fake_mcp_server.algorithms import ALGORITHM_KEY_TYPES, PYJWT_EQUIVALENTS
from fake_mcp_server.errors import IssuerCheckFailed, SigningKeysUnavailable, TokenRejected
from fake_mcp_server.settings import VerifierSettings, require_secure_transport, same_issuer

__all__ = ["JWKSCache", "KeyTrust"]

logger = logging.getLogger(__name__)

_USABLE_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


class _JWKSFetchError(Exception):
    """The JWKS (or the discovery document pointing at it) could not be used.

    `transient`: the server answered 5xx, so asking again later may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class KeyTrust:
    """How long one published key counts as confirmed by the issuer (on the `JWKSCache` clock).

    `confirmed_until` is the expiry of the newest fetched set that listed the key; it becomes
    -inf, for good, once a fetched set no longer lists it (or lists other material under its kid).
    """

    __slots__ = ("confirmed_until",)

    def __init__(self, confirmed_until: float) -> None:
        self.confirmed_until = confirmed_until

    @property
    def withdrawn(self) -> bool:
        return self.confirmed_until == -math.inf


class _KeySet:
    """One fetched JWKS: the usable signature keys, by kid, with `PyJWK`s built once per (kid, alg)."""

    def __init__(self, entries: list[dict[str, Any]], expires_at: float) -> None:
        self.expires_at = expires_at
        self._entries = entries
        self._by_kid: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            kid = entry.get("kid")
            if kid is not None:
                self._by_kid.setdefault(kid, []).append(entry)
        self._resolved: dict[tuple[str | None, str], PyJWK] = {}

    @classmethod
    def from_document(cls, document: Any, expires_at: float) -> _KeySet:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise _JWKSFetchError("JWKS is not an object with a 'keys' array")
        entries = [entry for entry in document["keys"] if _is_usable_signature_key(entry)]
        if not entries:
            raise _JWKSFetchError("JWKS has no usable signature keys")
        return cls(entries, expires_at)

    def __len__(self) -> int:
        return len(self._entries)

    def has_kid(self, kid: str) -> bool:
        return kid in self._by_kid

    def material(self) -> dict[str | None, str]:
        """Each key id the set can resolve (None for the lone kid-less key), with its JWKs as text."""
        listed: dict[str | None, str] = {
            kid: json.dumps(entries, sort_keys=True) for kid, entries in self._by_kid.items()
        }
        if len(self._entries) == 1:
            listed[None] = json.dumps(self._entries, sort_keys=True)
        return listed

    def find(self, kid: str | None, alg: str) -> PyJWK | None:
        """The key for a token with this `kid` and `alg`, or None if the kid is not in the set."""
        resolved = self._resolved.get((kid, alg))
        if resolved is not None:
            return resolved
        if kid is None:
            if len(self._entries) != 1:
                raise TokenRejected("token has no key id")
            candidates = self._entries
        else:
            candidates = self._by_kid.get(kid, [])
            if not candidates:
                return None
        for entry in candidates:
            if _fits(entry, alg):
                try:
                    key = PyJWK(entry, algorithm=PYJWT_EQUIVALENTS.get(alg, alg))
                except PyJWTError:
                    raise TokenRejected("unusable signing key") from None
                if key.Algorithm.check_key_length(key.key) is not None:
                    # Too short to trust (e.g. RSA under 2048 bits, NIST SP 800-131A).
                    raise TokenRejected("unusable signing key")
                self._resolved[(kid, alg)] = key
                return key
        raise TokenRejected("algorithm does not match the signing key")


def _is_usable_signature_key(entry: Any) -> bool:
    if not isinstance(entry, dict) or entry.get("kty") not in _USABLE_KEY_TYPES:
        return False
    if "d" in entry:
        # An issuer that publishes private key material is broken; do not build on it.
        return False
    if entry.get("use", "sig") != "sig":
        return False
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return False
    kid = entry.get("kid")
    return kid is None or isinstance(kid, str)


def _fits(entry: Mapping[str, Any], alg: str) -> bool:
    """Whether `alg` may be used with this key: its type and curve, and its own `alg` if it names one."""
    kty, curves = ALGORITHM_KEY_TYPES[alg]
    if entry.get("kty") != kty or (curves is not None and entry.get("crv") not in curves):
        return False
    published = entry.get("alg", alg)
    # An Ed25519 key published for `EdDSA` also signs as `Ed25519` (RFC 9864 §2.2), and back:
    # the curve was checked above, so the names say the same thing here.
    return published == alg or {published, alg} == {"EdDSA", "Ed25519"}


def _cache_lifetime(headers: httpx.Headers) -> float | None:
    """Seconds the response may be cached per its Cache-Control and Age headers, or None if unsaid."""
    directives = [part.strip().lower() for part in headers.get("cache-control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age":
            try:
                max_age = int(value.strip().strip('"'))
            except ValueError:
                return None
            try:
                age = max(int(headers.get("age", "0")), 0)
            except ValueError:
                age = 0
            return float(max(max_age - age, 0))
    return None


class JWKSCache:
    """Signing keys for `JWKSTokenVerifier`, fetched with the given httpx client.

    `fetches` counts the fetch attempts started so far (a number for metrics and tests).
    """

    def __init__(
        self,
        settings: VerifierSettings,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_withdrawn: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self.clock = clock
        self._on_withdrawn = on_withdrawn
        self._jwks_url = settings.jwks_url
        self._keys: _KeySet | None = None
        # Key id -> (its JWKs as text, its trust): a key keeps its trust across refreshes only
        # while its material stays the same.
        self._trust: dict[str | None, tuple[str, KeyTrust]] = {}
        self._in_flight: asyncio.Task[None] | None = None
        # No fetch starts before this moment (after a failure, or a refresh that did not find its kid).
        self._quiet_until = -math.inf
        self.fetches = 0

    async def key_for(self, kid: str | None, alg: str) -> tuple[PyJWK, KeyTrust]:
        """The key to check a token with this `kid` and `alg` (already on the allow-list), and its trust.

        Raises `TokenRejected` when no such key is published and `SigningKeysUnavailable`
        when there are no usable keys at all.
        """
        key = await self._key(kid, alg)
        return key, self._trust[kid][1]

    async def _key(self, kid: str | None, alg: str) -> PyJWK:
        keys = self._keys
        if keys is None or self._too_stale(keys):
            await self._wait_for_refresh(wanted_kid=kid)
            if self._keys is None or self._keys is keys:  # no fresh set arrived
                raise SigningKeysUnavailable(retry_after=self._settings.min_jwks_refresh_interval)
            keys = self._keys
        elif self.clock() >= keys.expires_at:
            self._start_refresh_if_allowed(wanted_kid=None)
        key = keys.find(kid, alg)
        if key is not None:
            return key
        assert kid is not None  # a kid-less token either resolves or raises in find()
        started_before_we_arrived = self._in_flight
        if started_before_we_arrived is not None:
            # It may have left before the issuer published this kid: see what it brings, then
            # (below) allow one refresh of our own unless the back-off is on.
            await asyncio.shield(started_before_we_arrived)
            key = self._find(kid, alg)
            if key is not None:
                return key
        await self._wait_for_refresh(wanted_kid=kid)
        key = self._find(kid, alg)
        if key is None:
            raise TokenRejected("unknown signing key")
        return key

    def _find(self, kid: str, alg: str) -> PyJWK | None:
        keys = self._keys
        return keys.find(kid, alg) if keys is not None else None

    def _too_stale(self, keys: _KeySet) -> bool:
        """Past even the stale-if-error allowance: such keys are never used."""
        return self.clock() >= keys.expires_at + self._settings.jwks_stale_if_error

    async def check(self) -> int:
        """Fetch the keys once, now, the way a request would; the number of usable keys.

        Raises `IssuerCheckFailed` saying in one line what is wrong. For a server's start-up:
        a wrong, dead or mistyped issuer URL should be reported there, not as a 503 per request.
        """
        try:
            async with asyncio.timeout(self._settings.jwks_fetch_deadline):
                keys = await self._download()
        except _JWKSFetchError as exc:
            raise IssuerCheckFailed(str(exc), transient=exc.transient) from None
        except httpx.TransportError as exc:
            where = str(exc.request.url) if _has_request(exc) else "the issuer"
            raise IssuerCheckFailed(f"cannot reach {where} ({_describe(exc)})", transient=True) from None
        except httpx.HTTPError as exc:
            raise IssuerCheckFailed(_describe(exc), transient=False) from None
        except TimeoutError:
            raise IssuerCheckFailed(
                f"the issuer's keys did not arrive within {self._settings.jwks_fetch_deadline:g} seconds",
                transient=True,
            ) from None
        except (ValueError, RecursionError):
            raise IssuerCheckFailed(
                "the issuer answered something that is not JSON", transient=False
            ) from None
        self._keys = keys
        self._confirm(keys)
        return len(keys)

    async def aclose(self) -> None:
        task, self._in_flight = self._in_flight, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _wait_for_refresh(self, wanted_kid: str | None) -> None:
        """Join the fetch in flight, or start one if allowed; return when it is over (never raises)."""
        task = self._in_flight or self._start_refresh_if_allowed(wanted_kid)
        if task is not None:
            # Shielded: a caller that goes away must not cancel the fetch the others wait on.
            await asyncio.shield(task)

    def _start_refresh_if_allowed(self, wanted_kid: str | None) -> asyncio.Task[None] | None:
        if self._in_flight is not None:
            return self._in_flight
        if self.clock() < self._quiet_until:
            return None
        self.fetches += 1
        self._in_flight = asyncio.ensure_future(self._refresh(wanted_kid))
        return self._in_flight

    async def _refresh(self, wanted_kid: str | None) -> None:
        try:
            async with asyncio.timeout(self._settings.jwks_fetch_deadline):
                keys = await self._download()
        except (httpx.HTTPError, _JWKSFetchError, ValueError, RecursionError, TimeoutError) as exc:
            self._quiet_until = self.clock() + self._settings.min_jwks_refresh_interval
            logger.warning("JWKS refresh failed (%s); keeping the cached keys", _describe(exc))
        else:
            self._keys = keys
            self._confirm(keys)
            if wanted_kid is not None and not keys.has_kid(wanted_kid):
                self._quiet_until = self.clock() + self._settings.min_jwks_refresh_interval
        finally:
            self._in_flight = None

    def _confirm(self, keys: _KeySet) -> None:
        """Extend the trust of every key `keys` lists as before; withdraw the trust of all others."""
        trust: dict[str | None, tuple[str, KeyTrust]] = {}
        withdrawn = False
        for kid, material in keys.material().items():
            known = self._trust.pop(kid, None)
            if known is not None and known[0] == material:
                known[1].confirmed_until = keys.expires_at
                trust[kid] = known
            else:
                trust[kid] = (material, KeyTrust(keys.expires_at))
                if known is not None:
                    known[1].confirmed_until = -math.inf
                    withdrawn = True
        for _, gone in self._trust.values():
            gone.confirmed_until = -math.inf
            withdrawn = True
        self._trust = trust
        if withdrawn and self._on_withdrawn is not None:
            self._on_withdrawn()

    async def _download(self) -> _KeySet:
        url = self._jwks_url or await self._discover()
        body, headers = await self._get(url)
        document = json.loads(body)
        lifetime = _cache_lifetime(headers)
        if lifetime is None:
            lifetime = self._settings.default_jwks_max_age
        lifetime = min(
            max(lifetime, self._settings.min_jwks_refresh_interval), self._settings.max_jwks_max_age
        )
        return _KeySet.from_document(document, expires_at=self.clock() + lifetime)

    async def _discover(self) -> str:
        issuer = self._settings.issuer
        assert issuer is not None  # settings require issuer or jwks_url
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        body, _ = await self._get(url)
        document = json.loads(body)
        if not isinstance(document, dict):
            raise _JWKSFetchError(f"the discovery document at {url} is not a JSON object")
        named = document.get("issuer")
        if not same_issuer(issuer, named):
            raise _JWKSFetchError(
                f"the discovery document at {url} names issuer {str(named)[:200]!r}, not {issuer!r}"
                " (the issuer URL must be what the issuer puts in iss)"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("http://", "https://")):
            raise _JWKSFetchError("discovery document has no usable jwks_uri")
        try:
            require_secure_transport("jwks_uri", jwks_uri, self._settings.allow_insecure_http)
        except ValueError as exc:
            raise _JWKSFetchError(str(exc)) from None
        self._jwks_url = jwks_uri
        return jwks_uri

    async def _get(self, url: str) -> tuple[bytes, httpx.Headers]:
        """GET `url` and read at most `max_jwks_bytes` of it; anything but a 200 is an error."""
        limit = self._settings.max_jwks_bytes
        async with self._client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise _JWKSFetchError(
                    f"HTTP {response.status_code} from {url}", transient=response.status_code >= 500
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise _JWKSFetchError(f"response from {url} exceeds {limit} bytes")
        return bytes(body), response.headers


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when the error carries no request
    except RuntimeError:
        return False
    return True


def _describe(exc: Exception) -> str:
    if isinstance(exc, _JWKSFetchError):
        return str(exc)
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):
        return "it outlasted jwks_fetch_deadline"
    return "response is not valid JSON"
