"""Group commit: the rows of every request handled in one turn of the event loop, one transaction.

A request hands its rows to `GroupCommit.submit` and awaits their commit, so what it recorded is
stored before it answers. The write is scheduled for the end of the loop's current turn, so the
other requests that became ready in the same turn (under load, most of them) add their rows to
the same batch: one commit serves many requests. Everything runs on the event loop's thread: a
writer thread would cost more in GIL hand-offs and wake-ups than the commit it takes off the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

Row = TypeVar("Row")


class GroupCommit(Generic[Row]):
    """Writes submitted rows with `write(rows)` once per turn of the event loop.

    `write` gets every row of a batch in submission order and commits them in one transaction; an
    exception it raises reaches every submitter of that batch.
    """

    def __init__(self, write: Callable[[list[Row]], None]) -> None:
        self._write = write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rows: list[Row] = []
        self._waiters: list[asyncio.Future[None]] = []

    async def submit(self, rows: Sequence[Row]) -> None:
        """Return once `rows` are committed (raise what `write` raised for their batch)."""
        loop = asyncio.get_running_loop()
        if self._waiters and loop is not self._loop:
            # A batch is pending on another event loop (tests run several): no batching across loops.
            self._write(list(rows))
            return
        if not self._waiters:
            self._loop = loop
            loop.call_soon(self._flush)
        committed: asyncio.Future[None] = loop.create_future()
        self._rows.extend(rows)
        self._waiters.append(committed)
        await committed

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        waiters, self._waiters = self._waiters, []
        error: Exception | None = None
        try:
            self._write(rows)
        except Exception as exc:
            error = exc
        for waiter in waiters:
            if waiter.done():  # its request was cancelled meanwhile
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
