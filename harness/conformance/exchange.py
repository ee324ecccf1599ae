"""Talking MCP over HTTP: send a case's probe to the server and record what came back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
from mcp.types.version import LATEST_HANDSHAKE_VERSION

from harness.conformance.challenge import Challenge, parse_challenge
from harness.conformance.model import CaseSkipped, Probe, ServerUnreachable, Target

__all__ = ["Observed", "SessionRefused", "check_reachable", "initialize_request", "send"]

_JSON_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class SessionRefused(Exception):
    """The session a case needs could not be used even by the user who opened it."""


@dataclass(frozen=True)
class Observed:
    status: int
    challenge: Challenge | None
    raw_challenge: str | None


def initialize_request(client_name: str = "mcp-idfwd-conformance") -> dict[str, Any]:
    """A JSON-RPC MCP `initialize` request, the first thing any client sends (what probes send)."""
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": client_name, "version": "1"},
        },
    }


def check_reachable(http: httpx.Client, target: Target) -> None:
    """Raise `ServerUnreachable` unless the server answers an HTTP request (any status will do)."""
    try:
        with http.stream("POST", target.server_url, json=initialize_request(), headers=_JSON_HEADERS):
            pass
    except httpx.TransportError as exc:
        reason = "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
        raise ServerUnreachable(f"the MCP server at {target.server_url} is unreachable ({reason})") from None


def send(http: httpx.Client, target: Target, probe: Probe) -> Observed:
    """Send `probe`: an `initialize`, or, for a probe with a `session_owner`, a `ping` on the
    session that owner opens (which raises `CaseSkipped` for a server without sessions)."""
    if probe.session_owner is None:
        observed, session_id = _post(http, target, initialize_request(), probe.authorization)
        if session_id and probe.authorization is not None:
            _close(http, target, probe.authorization, session_id)
        return observed
    with _session(http, target, probe.session_owner) as headers:
        observed, _ = _post(http, target, _ping(2), probe.authorization, headers)
    return observed


def _post(
    http: httpx.Client,
    target: Target,
    message: dict[str, Any],
    authorization: str | None,
    extra: dict[str, str] | None = None,
) -> tuple[Observed, str | None]:
    headers = {**_JSON_HEADERS, **(extra or {})}
    if authorization is not None:
        headers["Authorization"] = authorization
    # Streamed so an SSE answer need not be read to its end.
    with http.stream("POST", target.server_url, json=message, headers=headers) as response:
        raw = response.headers.get("www-authenticate")
        session_id = response.headers.get("mcp-session-id") if response.is_success else None
        return Observed(response.status_code, parse_challenge(raw), raw), session_id


@contextmanager
def _session(http: httpx.Client, target: Target, owner: str) -> Iterator[dict[str, str]]:
    """Open a session as `owner`, check that it serves `owner`, yield its request headers."""
    headers = {**_JSON_HEADERS, "Authorization": owner}
    response = http.post(target.server_url, json=initialize_request(), headers=headers)
    session_id = response.headers.get("mcp-session-id")
    if not response.is_success:
        raise SessionRefused(f"opening the session was refused with {response.status_code}")
    if not session_id:
        raise CaseSkipped("the server keeps no sessions (no Mcp-Session-Id): there is none to take over")
    session = {"Mcp-Session-Id": session_id}
    version = _negotiated_version(response)
    if version:
        session["MCP-Protocol-Version"] = version
    try:
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        http.post(target.server_url, json=initialized, headers={**headers, **session})
        own, _ = _post(http, target, _ping(1), owner, session)
        if not 200 <= own.status < 300:
            raise SessionRefused(f"the session refused a ping with its own user's token ({own.status})")
        yield session
    finally:
        _close(http, target, owner, session_id)


def _close(http: httpx.Client, target: Target, authorization: str, session_id: str) -> None:
    # Close the session we opened; a server that refuses this is not under test here.
    with suppress(httpx.HTTPError):
        http.delete(target.server_url, headers={"Authorization": authorization, "Mcp-Session-Id": session_id})


def _ping(request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "ping"}


def _negotiated_version(response: httpx.Response) -> str | None:
    """The `protocolVersion` of an initialize result, in a JSON or an SSE answer."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = next((line[5:] for line in text.splitlines() if line.startswith("data:")), "")
    try:
        version = json.loads(text)["result"]["protocolVersion"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None
