"""Who may call what: the inner secret opens issue-token, the admin secret opens the admin API.

Two secrets with two jobs (contract C2): every host holds the inner secret, so it must not be
enough to mint arbitrary tokens or change the issuer's state; only the admin secret, sent as
`Authorization: Bearer <admin secret>`, opens `/admin/...`. Both are compared in constant time,
and a request that carries a credential header twice is refused rather than guessed at.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import unquote

from starlette.requests import Request

from fake_enterprise.errors import IssuerError

__all__ = ["SECRET_HEADER", "SecretGate", "basic_client_id"]

SECRET_HEADER = "Enterprise-Api-Secret-Key"
_ADMIN_REALM = 'Bearer realm="mcp-idfwd-admin"'


def _single_header(request: Request, name: str) -> str | None:
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise IssuerError(400, "invalid_request", f"the {name} header is sent more than once")
    return values[0] if values else None


def _matches(presented: str, expected: bytes) -> bool:
    # Header values arrive as latin-1; a non-latin-1 secret simply never matches.
    return hmac.compare_digest(presented.encode("latin-1"), expected)


class SecretGate:
    """Checks the secret a request presents against the one its path needs."""

    def __init__(self, secret: str, admin_secret: str) -> None:
        self._secret = secret.encode()
        self._admin_secret = admin_secret.encode()

    def __repr__(self) -> str:
        return "SecretGate(<secrets hidden>)"

    def inner(self, request: Request) -> None:
        """Admit a call to the inner API: `Enterprise-Api-Secret-Key: <inner secret>`."""
        presented = _single_header(request, SECRET_HEADER)
        _single_header(request, "Authorization")
        if presented is None:
            raise IssuerError(401, "invalid_client", f"missing {SECRET_HEADER} header")
        if not _matches(presented, self._secret):
            raise IssuerError(401, "invalid_client", f"wrong {SECRET_HEADER}")

    def admin(self, request: Request) -> None:
        """Admit a call to the admin API: `Authorization: Bearer <admin secret>` and nothing else."""
        authorization = _single_header(request, "Authorization")
        _single_header(request, SECRET_HEADER)
        scheme, _, token = (authorization or "").partition(" ")
        if authorization is None or scheme.lower() != "bearer" or not token.strip():
            raise IssuerError(
                401,
                "invalid_token",
                "the admin API needs Authorization: Bearer <admin secret>",
                headers={"WWW-Authenticate": _ADMIN_REALM},
            )
        if not _matches(token.strip(), self._admin_secret):
            raise IssuerError(
                401,
                "invalid_token",
                "wrong admin secret",
                headers={"WWW-Authenticate": f'{_ADMIN_REALM}, error="invalid_token"'},
            )


def basic_client_id(authorization: str) -> str | None:
    """The client id (the user name, which may be empty) of HTTP Basic client authentication in an
    Authorization header value, or None if it holds none; the password is not read."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, _ = decoded.partition(":")
    return unquote(client_id) if separator else None
