"""Per-user token cache with single flight: one issue-token call per key, however many callers."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, Protocol

import anyio

from client_runtime.issuer_client import IssuedToken

__all__ = ["TokenBroker", "TokenKey", "TokenSource"]


class TokenKey(NamedTuple):
    """What a token is minted for; two keys never share a token."""

    tenant_id: str
    user_id: str
    user_type: str
    audience: str


class TokenSource(Protocol):
    async def issue_token(
        self, *, tenant_id: str, user_id: str, audience: str, user_type: str = "account"
    ) -> IssuedToken: ...


class _Flight:
    """One issue-token call in progress, awaited by every caller of the same key."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.token: IssuedToken | None = None
        self.error: Exception | None = None


class TokenBroker:
    """Hands out a token per `TokenKey`, cached until `expires_at - skew`.

    Concurrent `get`s for one key share one in-flight issue-token call; its failure reaches
    every waiter and is not cached. If the caller making the call is cancelled, a waiter
    takes over rather than failing. At most `max_entries` tokens are kept (least recently
    used go first). `invalidate` drops a token the MCP server rejected. A broker belongs to
    one event loop.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        skew: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if skew < 0 or max_entries < 1:
            raise ValueError("skew must not be negative and max_entries must be at least 1")
        self._source = source
        self._skew = skew
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[TokenKey, IssuedToken] = OrderedDict()
        self._flights: dict[TokenKey, _Flight] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def _fresh(self, token: IssuedToken) -> bool:
        return token.expires_at - self._skew > self._clock()

    def cached(self, key: TokenKey) -> IssuedToken | None:
        """The cached token for `key` if it is still fresh (does not call the issuer)."""
        token = self._cache.get(key)
        if token is None or not self._fresh(token):
            return None
        return token

    async def get(
        self, *, tenant_id: str, user_id: str, audience: str, user_type: str = "account"
    ) -> IssuedToken:
        """A token for this user and audience: cached if fresh, else issued (once per key at a time)."""
        key = TokenKey(tenant_id, user_id, user_type, audience)
        while True:
            token = self.cached(key)
            if token is not None:
                self._cache.move_to_end(key)
                return token
            flight = self._flights.get(key)
            if flight is None:
                return await self._fly(key)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.token is not None:
                return flight.token
            # The caller that was fetching was cancelled; go round and fetch ourselves.

    async def _fly(self, key: TokenKey) -> IssuedToken:
        flight = _Flight()
        self._flights[key] = flight
        try:
            token = await self._source.issue_token(
                tenant_id=key.tenant_id, user_id=key.user_id, audience=key.audience, user_type=key.user_type
            )
        except Exception as exc:
            flight.error = exc
            raise
        else:
            flight.token = token
            if self._fresh(token):
                self._store(key, token)
            return token
        finally:
            del self._flights[key]
            flight.done.set()

    def _store(self, key: TokenKey, token: IssuedToken) -> None:
        self._cache[key] = token
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)

    def invalidate(self, key: TokenKey, token: IssuedToken | None = None) -> None:
        """Forget the token for `key`; with `token`, only if that is still the cached one.

        Passing the rejected token keeps a fresher token another call fetched meanwhile.
        """
        cached = self._cache.get(key)
        if cached is not None and (token is None or cached == token):
            del self._cache[key]

    def clear(self) -> None:
        self._cache.clear()
