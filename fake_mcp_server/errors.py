"""Why a token was refused, in words safe to send back to the caller."""

from __future__ import annotations

__all__ = ["IssuerCheckFailed", "SigningKeysUnavailable", "TokenRejected"]


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


class IssuerCheckFailed(Exception):
    """The issuer's signing keys cannot be fetched the way the verifier will fetch them.

    The message is one line saying what is wrong (the URL that could not be reached, or the
    issuer the discovery document names instead of the expected one). `transient` is True when
    waiting may help: the issuer could not be reached or answered 5xx.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient
