"""Why a token was refused, in words safe to send back to the caller."""

from __future__ import annotations

__all__ = ["SigningKeysUnavailable", "TokenRejected"]


class TokenRejected(Exception):
    """The token is not acceptable.

    `description` is short and never contains the token or any of its claims, so it can go
    into an RFC 6750 `error_description` and into logs as is.
    """

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class SigningKeysUnavailable(TokenRejected):
    """The issuer's signing keys could not be obtained, so no token can be checked right now.

    A fault on the server's side (or the issuer's), not the caller's: the server answers 503
    with `Retry-After` (whole seconds, at least 1) from `retry_after`.
    """

    def __init__(self, retry_after: float, description: str = "signing keys unavailable") -> None:
        super().__init__(description)
        self.retry_after = retry_after
