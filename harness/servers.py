"""Serve ASGI apps with uvicorn on loopback, ready before anyone talks to them.

The socket is bound and listening before the app is built, so the URL (and with it an
issuer's `iss` or a server's resource URL) is known up front, and a client that connects
early waits in the kernel's backlog instead of being refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

__all__ = [
    "PortUnavailableError",
    "ServedApp",
    "ServerLimits",
    "bind_loopback",
    "serve_forever",
    "serve_in_thread",
    "socket_url",
    "start_in_thread",
]


class PortUnavailableError(OSError):
    """`host:port` cannot be bound (in use, most often); the message names both."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.host = host
        self.port = port
        self.in_use = cause.errno == errno.EADDRINUSE

    def __str__(self) -> str:
        reason = "it is in use" if self.in_use else self.strerror
        return f"cannot listen on {self.host}:{self.port}: {reason}"


def bind_loopback(
    host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0 picks a free one); `PortUnavailableError` if not.

    `reuse_port` sets SO_REUSEPORT, so that several processes can each listen on the port (the
    kernel spreads new connections over them); `listen=False` only binds, holding the port
    without taking connections.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # Accepted connections inherit this; without it small MCP request/response pairs stall on
    # Nagle + delayed ACK (about 40 ms each on loopback).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        if listen:
            sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PortUnavailableError(host, port, exc) from None
    return sock


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class _ReportingServer(uvicorn.Server):
    """A uvicorn server that reports when startup (lifespan included) has finished."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # uvicorn reports a failed startup by setting should_exit, not by raising.
        if not self.should_exit:
            self.ready.set()
            if self._on_ready is not None:
                self._on_ready()


class _Server(_ReportingServer):
    """A server in a thread that `stop()` ends at once.

    uvicorn notices `should_exit` only on its 0.1 s tick, then sleeps a fixed 0.1 s and polls the
    connections every 0.1 s: about 0.15 s per stop, most of the teardown time of a test suite
    that starts hundreds of servers. Here `stop()` wakes the loop, and the shutdown is uvicorn's
    own (close the listeners, let each connection finish its response within
    `timeout_graceful_shutdown`, cancel what is left, run the lifespan shutdown) polling every
    few milliseconds.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def install_signal_handlers(self) -> None:
        # Threads cannot own signal handlers; the caller decides how to stop us.
        return

    def request_stop(self) -> None:
        """Ask the server to stop (from any thread); it returns from `run()` once stopped."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            # A loop that has already closed has stopped serving too.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    async def main_loop(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        # on_tick reads should_exit, which request_stop sets before it wakes us.
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_graceful_shutdown
        # A connection leaves the set once its transport has closed; uvicorn has no event for that.
        while self.server_state.connections and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        if self.server_state.tasks:
            remaining = max(0.0, deadline - loop.time())
            _, pending = await asyncio.wait(set(self.server_state.tasks), timeout=remaining)
            for task in pending:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        await self.lifespan.shutdown()


@dataclass
class ServedApp:
    """An app being served in a background thread; `url` is its base URL."""

    url: str
    server: _Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 10.0) -> None:
        self.server.request_stop()
        self.thread.join(timeout)


@dataclass(frozen=True)
class ServerLimits:
    """What a server grants slow or greedy clients, as far as uvicorn lets us bound it.

    - `limit_concurrency`: open connections (and running requests) beyond it get 503 at once;
    - `timeout_keep_alive`: seconds an idle kept-alive connection stays open between requests;
    - `h11_max_incomplete_event_size`: bytes of unfinished request head buffered (the h11
      parser only; with httptools, uvicorn's choice when installed, the parser's own rules apply);
    - `timeout_graceful_shutdown`: seconds in-flight requests get when the server stops.

    uvicorn has no deadline for a request head or body that arrives slowly, nor for a new
    connection that sends nothing: such a client holds one connection, counted against
    `limit_concurrency`, until it goes away.
    """

    limit_concurrency: int = 1000
    timeout_keep_alive: int = 5
    h11_max_incomplete_event_size: int = 64 * 1024
    timeout_graceful_shutdown: int = 1


def _config(app: Any, log_level: str, limits: ServerLimits) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        # Our servers face their clients directly: an X-Forwarded-For from a loopback client would
        # only let it choose the address our access log shows.
        proxy_headers=False,
        lifespan="on",
        ws="none",
        limit_concurrency=limits.limit_concurrency,
        timeout_keep_alive=limits.timeout_keep_alive,
        h11_max_incomplete_event_size=limits.h11_max_incomplete_event_size,
        timeout_graceful_shutdown=limits.timeout_graceful_shutdown,
    )


def start_in_thread(
    app: Any,
    sock: socket.socket,
    *,
    log_level: str = "warning",
    startup_timeout: float = 30.0,
    limits: ServerLimits = ServerLimits(),
) -> ServedApp:
    """Serve `app` on the listening `sock` in a daemon thread; return once it accepts requests."""
    server = _Server(_config(app, log_level, limits))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    # Wake now and then only to notice a thread that died before it could report ready.
    while not server.ready.wait(0.05):
        if not thread.is_alive():
            raise RuntimeError("server failed to start (see the log above)")
        if time.monotonic() >= deadline:
            server.should_exit = True
            raise TimeoutError("server did not finish starting in time")
    return ServedApp(url=socket_url(sock), server=server, thread=thread)


@contextmanager
def serve_in_thread(
    app: Any, sock: socket.socket, *, log_level: str = "warning", limits: ServerLimits = ServerLimits()
) -> Iterator[ServedApp]:
    """Context manager form of `start_in_thread`: stops the server on exit."""
    served = start_in_thread(app, sock, log_level=log_level, limits=limits)
    try:
        yield served
    finally:
        served.stop()


def serve_forever(
    app: Any,
    sock: socket.socket,
    *,
    log_level: str = "info",
    limits: ServerLimits = ServerLimits(),
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve `app` in the foreground until Ctrl-C or SIGTERM (used by the CLI and issuer workers).

    `on_ready` is called once the server accepts requests.
    """
    _ReportingServer(_config(app, log_level, limits), on_ready).run(sockets=[sock])
