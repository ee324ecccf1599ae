"""The named error for an OAuth token endpoint's refusal (RFC 6749 §5.2), at the IdP or an MCP server's AS."""

from __future__ import annotations

import re

import httpx2

from client_runtime.errors import MCPIdentityRefreshError, MCPIssuerConfigError, MCPTokenError

__all__ = ["oauth_error_code", "oauth_refusal"]

# Only short snake_case codes are echoed into messages: a description is free text and could carry anything.
_SAFE_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# The client's own credentials or registration: an operator must fix them.
_CLIENT_ERRORS = ("invalid_client", "unauthorized_client")
# The user's identity (a refused, expired or revoked subject token or grant) or the policy about it:
# `invalid_target` is how RFC 8693 refuses a resource or audience the tenant's policy does not
# allow, the same refusal as issue-token's 403 `policy_denied`.
_IDENTITY_ERRORS = ("invalid_grant", "access_denied", "invalid_target")


def oauth_error_code(response: httpx2.Response) -> str | None:
    """The answer's `error` code if it is a short snake_case word, else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _SAFE_ERROR_CODE.match(code) else None


def oauth_refusal(response: httpx2.Response, *, party: str) -> MCPTokenError:
    """The named error for a 3xx or 4xx answer of `party`'s token endpoint (never retried).

    A redirect is `MCPIssuerConfigError`, and so are `invalid_client` and `unauthorized_client`
    (also a bare 401);
    `invalid_grant`, `access_denied` and `invalid_target` (policy) are `MCPIdentityRefreshError`;
    anything else (`invalid_request`, `invalid_scope`, ...) a non-retriable `MCPTokenError`.
    """
    status, code = response.status_code, oauth_error_code(response)
    described = f"HTTP {status}" + (f" {code}" if code else "")
    if 300 <= status < 400:
        # Following would resend the client's credentials to the Location: the configured URL is wrong.
        return MCPIssuerConfigError(
            f"{party} answered with a redirect ({described}), which is not followed; configure its exact URL",
            status_code=status,
        )
    if code in _CLIENT_ERRORS or (status == 401 and code is None):
        return MCPIssuerConfigError(
            f"{party} rejected this host's client credentials ({described})",
            status_code=status,
            error_code=code,
        )
    if code in _IDENTITY_ERRORS:
        return MCPIdentityRefreshError(
            f"{party} refused the user's identity, or policy denies it ({described})",
            status_code=status,
            error_code=code,
        )
    return MCPTokenError(
        f"{party} refused the token request ({described})", status_code=status, error_code=code
    )
