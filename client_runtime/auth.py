"""`ForwardedIdentityAuth`: stamps one identity on every HTTP request of one MCP session."""

from __future__ import annotations

from collections.abc import Generator

import httpx2

__all__ = ["ForwardedIdentityAuth"]

_REJECTING_STATUSES = (401, 403)


class ForwardedIdentityAuth(httpx2.Auth):
    """An `httpx2.Auth` that puts one user's token on every request the MCP transport sends.

    The streamable HTTP transport sends POSTs, a GET event stream and a closing DELETE through
    the same `httpx2.AsyncClient`, so auth on that client covers all three. The value goes in
    `header`: `Bearer <token>` in `Authorization`, the raw token in any other header (which
    then leaves an `Authorization` the request already has alone). A 401 or 403 answer is
    recorded in `rejected_status`; nothing here ever retries with another identity.
    """

    def __init__(self, token: str, *, header: str = "Authorization") -> None:
        self._header = header
        self._value = f"Bearer {token}" if header.lower() == "authorization" else token
        self.rejected_status: int | None = None
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"ForwardedIdentityAuth(header={self._header!r}, token=<hidden>)"

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers[self._header] = self._value
        self.requests_sent += 1
        response = yield request
        if response.status_code in _REJECTING_STATUSES and self.rejected_status is None:
            self.rejected_status = response.status_code
