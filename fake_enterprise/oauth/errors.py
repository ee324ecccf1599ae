"""OAuth errors: RFC 6749 §5.2 JSON bodies, never cached."""

from __future__ import annotations

from starlette.responses import JSONResponse

__all__ = ["NO_STORE", "OAuthError", "oauth_error_response"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """A refusal with its RFC error code; `description` names what was wrong, never a secret."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def oauth_error_response(exc: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if exc.status == 401:
        # RFC 6749 §5.2: a 401 invalid_client names the scheme the client may authenticate with.
        headers["WWW-Authenticate"] = 'Basic realm="token"'
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description}, status_code=exc.status, headers=headers
    )
