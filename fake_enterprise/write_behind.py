"""Write-behind: rows written by a background thread, in batches, off the request path.

Requests hand their rows to `WriteBehind.submit` and go on at once: the disk never holds up an
answer or the event loop (on a busy disk one SQLite commit now and then takes tens of
milliseconds). Woken by the first row of a batch, the thread lingers a moment (`linger`), then
writes everything queued meanwhile in one batch, so under load one commit serves hundreds of
requests. `flush` cuts the linger short and waits until everything submitted before it is
written: a reader in the same process calls it first and sees every row submitted so far.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["WriteBehind", "WriteBehindClosedError"]

Row = TypeVar("Row")
_log = logging.getLogger(__name__)


class WriteBehindClosedError(RuntimeError):
    """Rows were submitted after `close()`."""


class WriteBehind(Generic[Row]):
    """Writes submitted rows with `write(rows)` (one transaction per call) on one background thread.

    A batch whose `write` raises is dropped with a warning naming the exception's type: the rows
    are a record kept beside the work, and the work must not fail with them. The thread starts on
    the first submit (again, should it ever have died); an object that has had no submit yet may be
    made before a fork and used in the child (the issuer's workers make theirs after the fork).
    """

    def __init__(self, write: Callable[[list[Row]], None], *, name: str, linger: float = 0.05) -> None:
        self._write = write
        self._name = name
        self._linger = linger
        self._hurry = False  # a flush or close is waiting: no lingering
        self._condition = threading.Condition()
        self._rows: list[Row] = []
        self._submitted = 0  # batches handed over, ever
        self._written = 0  # of those, how many the thread has finished with
        self._closed = False
        self._thread: threading.Thread | None = None
        self._owner_pid = os.getpid()

    def __repr__(self) -> str:
        return f"WriteBehind({self._name!r}, pending={len(self._rows)}, closed={self._closed})"

    def submit(self, rows: Sequence[Row]) -> None:
        """Queue `rows` for the next batch; never waits for the disk."""
        if not rows:
            return
        with self._condition:
            if self._closed:
                raise WriteBehindClosedError(f"{self._name} is closed")
            self._ensure_thread()
            # Rows already waiting mean the thread is awake (it takes them when its write is
            # done): only the first of a batch needs to wake it, not every request.
            wake = not self._rows
            self._rows.extend(rows)
            self._submitted += 1
            if wake:
                self._condition.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row submitted before this call is handled (written, or dropped with a
        warning if its batch failed); False if `timeout` ran out."""
        with self._condition:
            target = self._submitted
            if self._written < target:
                self._hurry = True
                self._condition.notify_all()
            return self._condition.wait_for(lambda: self._written >= target, timeout)

    def close(self) -> None:
        """Write what is pending, then stop the thread. Later submits raise `WriteBehindClosedError`."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            thread = self._thread if self._owner_pid == os.getpid() else None
        if thread is not None:
            thread.join()

    def _ensure_thread(self) -> None:
        # Caller holds the condition. A fork leaves the parent's thread object behind, dead.
        if self._thread is not None and self._owner_pid == os.getpid() and self._thread.is_alive():
            return
        self._owner_pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._rows or self._closed)
                if not self._rows:
                    return
                self._condition.wait_for(lambda: self._hurry or self._closed, self._linger)
                self._hurry = False
                rows, self._rows = self._rows, []
                batch_end = self._submitted
            try:
                self._write(rows)
            except Exception as exc:
                _log.warning("%s: %d rows not written (%s)", self._name, len(rows), type(exc).__name__)
            except BaseException:
                with self._condition:
                    self._thread = None  # dying: the next submit starts another
                raise
            finally:
                # Even when the thread dies of something worse, no flush waits for this batch forever.
                with self._condition:
                    self._written = batch_end
                    self._condition.notify_all()
