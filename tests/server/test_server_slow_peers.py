"""Slow peers cannot hold the server: a dripping JWKS endpoint meets one overall deadline, and the
server's own listener bounds concurrency and idle keep-alive connections."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from server_support import Keys, mint
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fake_mcp_server import (
    JWKSTokenVerifier,
    ServerSettings,
    SigningKeysUnavailable,
    VerifierSettings,
    create_app,
)
from harness.servers import ServerLimits, bind_loopback, serve_in_thread, socket_url

pytestmark = pytest.mark.anyio

DEADLINE = 0.5
MARGIN = 2.0  # scheduling on a busy machine; a dripping peer without the deadline takes minutes


@asynccontextmanager
async def dripping_server() -> AsyncIterator[str]:
    """A raw HTTP server that answers any request with headers, then one body byte per 0.1 s."""

    handlers: set[asyncio.Task[None]] = set()

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            )
            while True:
                writer.write(b" ")
                await writer.drain()
                # The peer's pace (always under http_timeout, so no single read ever times out).
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.close()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@pytest.mark.parametrize("path", ["discovery", "jwks_url"])
async def test_every_waiting_request_fails_at_the_fetch_deadline(keys: Keys, path: str) -> None:
    async with dripping_server() as url:
        audience = "http://127.0.0.1:9100/mcp"
        source = {"issuer": url} if path == "discovery" else {"jwks_url": url + "/jwks.json"}
        settings = VerifierSettings(audience=audience, jwks_fetch_deadline=DEADLINE, http_timeout=5, **source)
        async with JWKSTokenVerifier(settings) as verifier:
            token = mint(keys.rsa, issuer=url, audience=audience)

            async def refused() -> float:
                with pytest.raises(SigningKeysUnavailable):
                    await verifier.verify(token)
                return time.monotonic()

            started = time.monotonic()
            finished = await asyncio.wait_for(asyncio.gather(*(refused() for _ in range(20))), 30)
        assert max(finished) - started < DEADLINE + MARGIN
        assert max(finished) - min(finished) < 0.5  # all at once, not one after another
        assert verifier.jwks.fetches == 1


async def test_server_answers_503_at_the_fetch_deadline(keys: Keys) -> None:
    async with dripping_server() as url:
        sock = bind_loopback()
        resource_url = socket_url(sock) + "/mcp"
        verifier = VerifierSettings(
            audience=resource_url, issuer=url, jwks_url=url + "/jwks.json", jwks_fetch_deadline=DEADLINE
        )
        app = create_app(ServerSettings(issuer_url=url, resource_url=resource_url, verifier=verifier))
        token = mint(keys.rsa, issuer=url, audience=resource_url)
        with serve_in_thread(app, sock):
            async with httpx.AsyncClient(timeout=30) as http:
                started = time.monotonic()
                replies = await asyncio.gather(
                    *(
                        http.post(resource_url, headers={"Authorization": f"Bearer {token}"})
                        for _ in range(10)
                    )
                )
                elapsed = time.monotonic() - started
    assert {reply.status_code for reply in replies} == {503}
    assert elapsed < DEADLINE + MARGIN


def _hello_app() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("hello"))])


def test_connections_beyond_the_concurrency_limit_get_503() -> None:
    sock = bind_loopback()
    url = socket_url(sock)
    host, port = sock.getsockname()[:2]
    with serve_in_thread(_hello_app(), sock, limits=ServerLimits(limit_concurrency=3)):
        with httpx.Client(timeout=10) as http:
            assert http.get(url + "/").status_code == 200
        idle = [socket.create_connection((host, port), timeout=10) for _ in range(3)]
        try:
            # The kernel queues connections in order, so the server takes the three idle ones
            # before the one below.
            with httpx.Client(timeout=10) as http:
                assert http.get(url + "/").status_code == 503
        finally:
            for connection in idle:
                connection.close()


def test_idle_keep_alive_connection_is_closed() -> None:
    sock = bind_loopback()
    host, port = sock.getsockname()[:2]
    with (
        serve_in_thread(_hello_app(), sock, limits=ServerLimits(timeout_keep_alive=1)),
        socket.create_connection((host, port), timeout=10) as connection,
    ):
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while not received.endswith(b"hello"):
            received += connection.recv(4096)
        started = time.monotonic()
        assert connection.recv(4096) == b""  # the server hangs up, we do not
        assert time.monotonic() - started < 1 + MARGIN
