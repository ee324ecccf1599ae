"""The one error type the HTTP layer turns into a `{"error", "message"}` JSON response."""

from __future__ import annotations

__all__ = ["IssuerError"]


class IssuerError(Exception):
    """An API error: HTTP `status`, machine-readable `error` code, human `message`.

    Messages name fields and values the caller sent, never a secret or a token.
    """

    def __init__(
        self, status: int, error: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})

    def as_json(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}
