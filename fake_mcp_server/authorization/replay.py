"""Refusing a second use of the same ID-JAG (`jti`) for as long as the assertion could be accepted."""

from __future__ import annotations

import heapq
from collections.abc import Callable

__all__ = ["ReplayGuard"]


class ReplayGuard:
    """Remembers used (issuer, jti) pairs until they expire.

    `jti` values are only unique per issuer, hence the pair. Entries leave once past their
    expiry, so memory follows the rate of accepted assertions times their lifetime.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._used: dict[tuple[str, str], float] = {}
        self._expiries: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._used)

    def first_use(self, issuer: str, jti: str, remember_until: float) -> bool:
        """True, and remember the pair, if it was not used before; False for a replay.

        Check and record happen without an await in between, so two concurrent requests with
        the same assertion cannot both see a first use.
        """
        self._forget_expired()
        key = (issuer, jti)
        if key in self._used:
            return False
        self._used[key] = remember_until
        heapq.heappush(self._expiries, (remember_until, key))
        return True

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._expiries and self._expiries[0][0] < now:
            _, key = heapq.heappop(self._expiries)
            self._used.pop(key, None)
