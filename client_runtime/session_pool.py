"""`SessionPool`: open MCP client sessions kept for reuse by the one user and identity they were opened for.

A session is opened for a `SessionKey` (provider, tenant, user, identity mode) and an identity
secret (the user's token or credential). A later call reuses it only if it has the same key and
the same secret: when the broker hands out a different token for the user, the old session is
retired and a new one opened with the new token, so a session never carries two identities and
no two users ever share one. Each session has its own HTTP client, hence its own connections.

The MCP SDK runs a session inside task groups, which must be left by the task that entered
them, so every session is owned by a task of the pool's task group that opens it, waits to be
told to stop, and closes it. Calls from any task use it meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp.client import Client

__all__ = ["Lease", "SessionKey", "SessionPool", "SessionPoolSettings"]

logger = logging.getLogger(__name__)

Connect = Callable[[], AbstractAsyncContextManager[Client]]


@dataclass(frozen=True)
class SessionPoolSettings:
    """Bounds of a runtime's session pool.

    At most `max_sessions` sessions are kept (the least recently used goes first); one unused
    for `idle_timeout` seconds is closed, checked on every call and every `sweep_interval`
    seconds (default: half the idle timeout). `max_sessions=0` turns reuse off for every provider.
    """

    max_sessions: int = 256
    idle_timeout: float = 60.0
    sweep_interval: float | None = None

    def __post_init__(self) -> None:
        if self.max_sessions < 0 or self.idle_timeout <= 0:
            raise ValueError("max_sessions must not be negative and idle_timeout must be positive")
        if self.sweep_interval is not None and self.sweep_interval <= 0:
            raise ValueError("sweep_interval must be positive")


@dataclass(frozen=True)
class SessionKey:
    """Whose session it is and how it was configured; two keys never share a session.

    `provider_headers` (the token header and the static headers, which may hold API keys) is
    part of the key so an edited provider gets a new session; it is left out of the repr.
    """

    tenant_id: str
    provider_id: str
    server_url: str
    user_id: str
    user_type: str
    identity_mode: str
    credential_id: str | None
    provider_headers: tuple[tuple[str, str], ...] = field(repr=False)

    @staticmethod
    def headers_of(token_header: str, static_headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        return (("", token_header), *sorted(static_headers.items()))


class _Session:
    def __init__(self, key: SessionKey, secret: str | None) -> None:
        self.key = key
        self._secret = secret
        self.client: Client | None = None
        self.in_use = 0
        self.last_used = 0.0
        self.retired = False
        self.stop = anyio.Event()
        self.closed = anyio.Event()

    def carries(self, secret: str | None) -> bool:
        return self._secret == secret

    def __repr__(self) -> str:
        return f"_Session({self.key!r}, in_use={self.in_use}, retired={self.retired})"


@dataclass
class Lease:
    """One call's use of a pooled session. `reused` is False if this call opened it."""

    client: Client
    reused: bool
    discarded: bool = False

    def discard(self) -> None:
        """Retire the session when this call ends (the server refused its identity, say)."""
        self.discarded = True


class SessionPool:
    """Sessions per `SessionKey`, bounded in number (LRU) and idle time (`clock`, in seconds).

    `start()` and `stop()` must be awaited by one task (they enter and leave the task group);
    `lease` and `close_all` work from any task of the same event loop while the pool runs.
    """

    def __init__(
        self, settings: SessionPoolSettings | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings or SessionPoolSettings()
        self._clock = clock
        self._sessions: OrderedDict[SessionKey, _Session] = OrderedDict()
        self._opening: dict[SessionKey, anyio.Lock] = {}
        self._live: set[_Session] = set()
        self._exit_stack: AsyncExitStack | None = None
        self._group: TaskGroup | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def running(self) -> bool:
        return self._group is not None and self.settings.max_sessions > 0

    async def start(self) -> None:
        if self._exit_stack is not None:
            raise RuntimeError("the session pool is already running")
        async with AsyncExitStack() as stack:
            self._group = await stack.enter_async_context(anyio.create_task_group())
            self._group.start_soon(self._sweep)
            self._exit_stack = stack.pop_all()

    async def stop(self) -> None:
        """Close every session (waiting for calls in progress), then leave the task group."""
        if self._exit_stack is None or self._group is None:
            return
        try:
            await self.close_all()
        finally:
            self._group.cancel_scope.cancel()
            stack, self._exit_stack, self._group = self._exit_stack, None, None
            await stack.aclose()

    async def close_all(self) -> None:
        """Retire every session and wait until each is closed (those in use, once their calls end)."""
        for session in list(self._sessions.values()):
            self._retire(session)
        for session in list(self._live):
            self._retire(session)
            await session.closed.wait()

    def close_idle(self, *, everywhere: bool = True) -> None:
        """Retire the sessions unused for `idle_timeout` seconds (they close in the background).

        With `everywhere=False` the walk stops at the first idle session still fresh: sessions
        are kept in order of use, so that finds the expired ones in time proportional to their
        number, cheap enough for every call; the sweeper then walks everything.
        """
        deadline = self._clock() - self.settings.idle_timeout
        for session in list(self._sessions.values()):
            if session.in_use:
                continue
            if session.last_used <= deadline:
                self._retire(session)
            elif not everywhere:
                return

    @asynccontextmanager
    async def lease(self, key: SessionKey, secret: str | None, connect: Connect) -> AsyncIterator[Lease]:
        """The session for `key` carrying `secret`, opened with `connect` if there is none.

        A session for `key` with another secret is retired first. A call that ends with an
        exception (cancellation included) or calls `Lease.discard` retires the session, so a
        session that may be broken is never handed to the next call.
        """
        if self._group is None:
            raise RuntimeError("the session pool is not running")
        self.close_idle(everywhere=False)
        session, opened = await self._session_for(key, secret, connect)
        session.in_use += 1
        lease = Lease(session.client, reused=not opened)  # type: ignore[arg-type]
        ended_well = False
        try:
            yield lease
            ended_well = not lease.discarded
        finally:
            session.in_use -= 1
            session.last_used = self._clock()
            if not ended_well or session.retired:
                self._retire(session)
            else:
                self._sessions.move_to_end(key)  # keeps the order of use that close_idle relies on

    async def _session_for(
        self, key: SessionKey, secret: str | None, connect: Connect
    ) -> tuple[_Session, bool]:
        session = self._current(key, secret)
        if session is not None:
            return session, False
        # One opening per key at a time: concurrent first calls of a user share one session.
        lock = self._opening.setdefault(key, anyio.Lock())
        try:
            async with lock:
                session = self._current(key, secret)
                if session is not None:
                    return session, False
                return await self._open(key, secret, connect), True
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._opening.pop(key, None)

    def _current(self, key: SessionKey, secret: str | None) -> _Session | None:
        session = self._sessions.get(key)
        if session is None:
            return None
        if not session.carries(secret):
            # The user's token rotated (or was replaced): the old identity's session goes.
            self._retire(session)
            return None
        self._sessions.move_to_end(key)
        return session

    async def _open(self, key: SessionKey, secret: str | None, connect: Connect) -> _Session:
        assert self._group is not None
        while len(self._sessions) >= self.settings.max_sessions:
            self._retire(next(iter(self._sessions.values())))
        session = _Session(key, secret)
        self._live.add(session)
        try:
            await self._group.start(self._own, session, connect)
        except BaseException:
            self._live.discard(session)
            raise
        session.last_used = self._clock()
        self._sessions[key] = session
        return session

    async def _own(self, session: _Session, connect: Connect, *, task_status: TaskStatus[None]) -> None:
        try:
            async with connect() as client:
                session.client = client
                task_status.started()
                await session.stop.wait()
        except Exception:
            if session.client is None:
                raise  # the opening failed: the caller of `start` gets the error
            # Closing failed (the server went away, say): the session is gone all the same.
            logger.debug("an MCP session ended with an error", exc_info=True)
        finally:
            session.retired = True
            if self._sessions.get(session.key) is session:
                del self._sessions[session.key]
            self._live.discard(session)
            session.closed.set()

    def _retire(self, session: _Session) -> None:
        session.retired = True
        if self._sessions.get(session.key) is session:
            del self._sessions[session.key]
        if session.in_use == 0:
            session.stop.set()

    async def _sweep(self) -> None:
        interval = self.settings.sweep_interval or self.settings.idle_timeout / 2
        while True:
            await anyio.sleep(interval)
            self.close_idle()
