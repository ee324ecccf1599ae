"""`ForwardedIdentityAuth`: stamps one identity on every HTTP request of one MCP session."""

from __future__ import annotations

from collections.abc import Generator

import httpx2

__all__ = ["ForwardedIdentityAuth"]


class ForwardedIdentityAuth(httpx2.Auth):
    """An `httpx2.Auth` that puts one user's token on every request the MCP transport sends.

    The streamable HTTP transport sends its POSTs, the GET event stream and the closing DELETE
    through one `httpx2.AsyncClient`, so auth on that client covers all three. The value goes
    in `header`: `Bearer <token>` in `Authorization`, the raw token in any other header (which
    then leaves an `Authorization` the request already carries alone). It never answers a
    challenge by trying something else: a 401 is returned to the caller as is.
    """

    def __init__(self, token: str, *, header: str = "Authorization") -> None:
        self._header = header
        self._value = f"Bearer {token}" if header.lower() == "authorization" else token

    def __repr__(self) -> str:
        return f"ForwardedIdentityAuth(header={self._header!r}, token=<hidden>)"

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers[self._header] = self._value
        yield request
