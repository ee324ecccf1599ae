"""`BearerTokenVerifier`: what `BearerAuthMiddleware` needs from a verifier, and nothing more.

`JWKSTokenVerifier` is one; any server author's verifier that says why it refuses (like the
mcp SDK's `TokenVerifier`, plus a reason) gets the middleware's RFC 6750 challenges too.
"""

from __future__ import annotations

from typing import Protocol

from mcp.server.auth.provider import AccessToken

__all__ = ["BearerTokenVerifier"]


class BearerTokenVerifier(Protocol):
    async def verify(self, token: str) -> AccessToken:
        """The verified token.

        Raises `TokenRejected(description)` for a token that is not acceptable (401
        `invalid_token`, the description in the challenge, so keep it short and free of token
        contents) and `SigningKeysUnavailable(retry_after)` when no token can be checked right now
        (503 with `Retry-After`).
        """
        ...
