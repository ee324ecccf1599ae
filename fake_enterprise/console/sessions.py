"""Console sign-in sessions and CSRF tokens: signed cookies, no server-side state.

Every value is an HMAC-SHA256 under a key derived (HKDF) from the admin secret, so that several
worker processes on one database accept each other's sessions, and a new admin secret ends every
session. A session cookie carries its start time and a random id; it is good for `ttl` seconds.
Each form carries a CSRF token derived from the session id (or, on the sign-in form, from a
one-off cookie set with the form), checked in constant time. Signing out clears the cookie; a
copy taken before then stays good until it expires (the price of no server-side state).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["ConsoleSession", "SessionSigner"]

_VERSION = "v1"
_HKDF_INFO = b"mcp-idfwd console session key v1"
# A session start more than this far in the future is a forgery or a clock jump: refused.
_CLOCK_SKEW = 60


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _bytes(text: str) -> bytes:
    # A lone surrogate (from a crafted form or cookie) becomes bytes that match nothing.
    return text.encode("utf-8", "surrogatepass")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


@dataclass(frozen=True)
class ConsoleSession:
    session_id: str
    started_at: int
    csrf_token: str


class SessionSigner:
    """Issues and checks session cookies, CSRF tokens and flash messages for one admin secret."""

    def __init__(self, admin_secret: str, *, ttl: int, clock: Callable[[], float]) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            admin_secret.encode()
        )
        self._admin_secret = admin_secret.encode()
        self.ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return "SessionSigner(<key hidden>)"

    def _mac(self, purpose: str, *parts: str) -> str:
        message = _bytes("|".join((purpose, *parts)))
        return _b64url(hmac.new(self._key, message, hashlib.sha256).digest())

    def _check(self, presented: str, purpose: str, *parts: str) -> bool:
        return hmac.compare_digest(_bytes(presented), self._mac(purpose, *parts).encode())

    def admin_secret_matches(self, presented: str) -> bool:
        return hmac.compare_digest(_bytes(presented), self._admin_secret)

    # --- sessions -----------------------------------------------------------------------------

    def new_session(self) -> tuple[str, ConsoleSession]:
        """A fresh session: its cookie value and what it holds."""
        session_id = secrets.token_hex(16)
        started_at = int(self._clock())
        mac = self._mac("session", _VERSION, str(started_at), session_id)
        cookie = f"{_VERSION}.{started_at}.{session_id}.{mac}"
        return cookie, self._session(session_id, started_at)

    def session(self, cookie: str | None) -> ConsoleSession | None:
        """The session a cookie holds, if it is authentic and has not expired."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
            return None
        _, started, session_id, mac = parts
        if not self._check(mac, "session", _VERSION, started, session_id):
            return None
        started_at, now = int(started), self._clock()
        if started_at > now + _CLOCK_SKEW or started_at + self.ttl <= now:
            return None
        return self._session(session_id, started_at)

    def _session(self, session_id: str, started_at: int) -> ConsoleSession:
        return ConsoleSession(session_id, started_at, self._mac("csrf", session_id))

    def csrf_ok(self, session: ConsoleSession, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(_bytes(presented), session.csrf_token.encode())

    # --- the sign-in form's CSRF token (no session yet: bound to a one-off cookie) -------------

    def new_sign_in_nonce(self) -> tuple[str, str]:
        """A one-off cookie value for the sign-in form, and the CSRF token that goes with it."""
        nonce = secrets.token_hex(16)
        return nonce, self._mac("sign-in", nonce)

    def sign_in_csrf_ok(self, nonce: str | None, presented: str | None) -> bool:
        return bool(nonce) and presented is not None and self._check(presented, "sign-in", nonce or "")

    # --- flash messages (shown once after a redirect; signed so nobody else can plant one) -----

    def flash(self, kind: str, text: str) -> str:
        payload = _b64url(json.dumps({"kind": kind, "text": text[:400]}).encode())
        return f"{payload}.{self._mac('flash', payload)}"

    def read_flash(self, cookie: str | None) -> dict[str, Any] | None:
        if not cookie or "." not in cookie:
            return None
        payload, mac = cookie.rsplit(".", 1)
        if not self._check(mac, "flash", payload):
            return None
        try:
            message = json.loads(_b64url_decode(payload))
        except (ValueError, UnicodeError, binascii.Error):
            return None
        return message if isinstance(message, dict) else None
