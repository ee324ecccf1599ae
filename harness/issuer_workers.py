"""Serve the issuer from several worker processes: one port, one SQLite database, one key ring.

The parent (the supervisor) opens the database once to check it (data key, key ring, schema)
and holds its lock, then starts `workers` processes, each with its own event loop, app and
SQLite connection. What must be shared between them lives in the database (users, grants,
keys, fault switches, OAuth state, pending sign-ins); see docs/issuer-performance.md.

How the port is shared (`socket_sharing`):
- "reuseport": each worker listens on its own SO_REUSEPORT socket and the kernel hashes each
  new connection to one of them (the parent only binds, to hold the port);
- "shared": the parent's listening socket is handed to every worker and they all accept on it.

The supervisor stops every worker on SIGINT/SIGTERM, and all of them when one exits; workers
die with their parent (PR_SET_PDEATHSIG), so none is left behind even if it is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from fake_enterprise import IssuerSettings, create_app
from harness.access_log import AccessLogMiddleware, access_logger
from harness.servers import bind_loopback, serve_forever

__all__ = [
    "SOCKET_SHARING",
    "IssuerWorkers",
    "WorkerFailedError",
    "serve_with_workers",
    "start_workers",
]

SOCKET_SHARING = ("reuseport", "shared")
_PR_SET_PDEATHSIG = 1
_STOP_TIMEOUT = 10.0


class WorkerFailedError(Exception):
    """A worker process could not start, or exited while serving."""


def _die_with_parent(parent_pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def _worker_main(
    settings: IssuerSettings,
    sock: socket.socket | None,
    address: tuple[str, int],
    report: Connection,
    parent_pid: int,
    log_level: str,
) -> None:
    """One worker: its own app and database connection, serving until SIGINT/SIGTERM."""
    # The supervisor's SIGTERM handler came with the fork; uvicorn installs its own once serving.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent_pid)
    try:
        if sock is None:
            sock = bind_loopback(*address, reuse_port=True)
        app = AccessLogMiddleware(create_app(settings), access_logger("issuer"))
    except Exception as exc:  # reported to the supervisor, which prints one line
        report.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    serve_forever(app, sock, log_level=log_level, on_ready=lambda: report.send(("ready", "")))


@dataclass
class IssuerWorkers:
    """Worker processes serving one issuer; `pids` once they are all ready."""

    processes: list[multiprocessing.process.BaseProcess]
    # The receiving ends of the pipes each worker reports its start on.
    reports: list[Connection]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process.pid is not None]

    def wait(self) -> multiprocessing.process.BaseProcess:
        """Block until some worker exits; that worker."""
        sentinels = {process.sentinel: process for process in self.processes}
        ready = wait(list(sentinels))
        return sentinels[ready[0]]  # type: ignore[index]

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM to every live worker (uvicorn stops gracefully), SIGKILL to those still there."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def start_workers(
    settings: IssuerSettings,
    sock: socket.socket,
    count: int,
    *,
    socket_sharing: str = "reuseport",
    log_level: str = "info",
    startup_timeout: float = 60.0,
) -> IssuerWorkers:
    """Start `count` workers serving `settings` on `sock`'s port; return once all accept requests.

    Workers are forked: call this from a process that runs no other threads (the CLI does).

    With "reuseport", `sock` must be bound with SO_REUSEPORT and not listening (it holds the
    port); with "shared", it is the listening socket every worker accepts on.
    """
    if socket_sharing not in SOCKET_SHARING:
        raise ValueError(f"socket_sharing must be one of {', '.join(SOCKET_SHARING)}")
    # Forked: a spawned worker would import everything again (1 s of CPU, several on a busy
    # machine). Forking is safe from the CLI's supervisor: it has no other threads, and it has
    # closed its SQLite connection; each worker opens its own.
    context = multiprocessing.get_context("fork")
    address = sock.getsockname()[:2]
    shared = sock if socket_sharing == "shared" else None
    pipes = [context.Pipe(duplex=False) for _ in range(count)]
    workers = IssuerWorkers(
        processes=[
            context.Process(
                target=_worker_main,
                args=(settings, shared, address, sender, os.getpid(), log_level),
                name=f"issuer-worker-{index}",
                daemon=True,
            )
            for index, (_, sender) in enumerate(pipes)
        ],
        reports=[receiver for receiver, _ in pipes],
    )
    for process in workers.processes:
        process.start()
    for _, sender in pipes:
        sender.close()  # the workers hold their copies; EOF then means a worker is gone
    try:
        _wait_until_ready(workers, startup_timeout)
    except BaseException:
        workers.stop()
        raise
    return workers


def _wait_until_ready(workers: IssuerWorkers, timeout: float) -> None:
    waiting = dict(zip(workers.reports, workers.processes, strict=True))
    deadline = time.monotonic() + timeout
    while waiting:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            count = len(workers.processes)
            raise WorkerFailedError(f"{len(waiting)} of {count} workers did not start within {timeout:.0f} s")
        for report in wait(list(waiting), remaining):
            process = waiting.pop(report)  # type: ignore[call-overload]
            try:
                kind, message = report.recv()  # type: ignore[union-attr]
            except EOFError:
                process.join(1.0)
                raise WorkerFailedError(
                    f"worker {process.pid} exited with status {process.exitcode} while starting"
                ) from None
            if kind == "failed":
                raise WorkerFailedError(message)


def serve_with_workers(
    settings: IssuerSettings,
    sock: socket.socket,
    count: int,
    *,
    socket_sharing: str = "reuseport",
    log_level: str = "info",
    announce: Callable[[IssuerWorkers], None],
    on_exit: Callable[[str], None],
) -> int:
    """Start the workers, `announce` them, and serve until SIGINT/SIGTERM (0) or until a worker
    exits on its own (1, after `on_exit` was told why). Every worker is gone when this returns.
    """

    def stop_on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Before the first worker starts: a SIGTERM that comes early must stop them all too.
    previous = signal.signal(signal.SIGTERM, stop_on_signal)
    workers: IssuerWorkers | None = None
    try:
        workers = start_workers(settings, sock, count, socket_sharing=socket_sharing, log_level=log_level)
        announce(workers)
        exited = workers.wait()
        on_exit(f"worker {exited.pid} exited with status {exited.exitcode}; stopping the others")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # Further signals (a second Ctrl-C) must not cut the shutdown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if workers is not None:
            workers.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
