"""The exceptions a host catches, each with the sentence it should show its end user.

Every failure to obtain or forward an identity derives from `MCPTokenError`, so a host that
only wants "identity failed, do not run the tool" catches that one class. Subclasses say
*why*, which decides what the user is told and whether retrying can help. No message or
repr ever contains a token, a secret or a credential.
"""

from __future__ import annotations

__all__ = [
    "MCPCredentialRequiredError",
    "MCPIdentityForwardingError",
    "MCPIdentityRefreshError",
    "MCPIssuerConfigError",
    "MCPMissingUserError",
    "MCPNoRefreshTokenError",
    "MCPProviderConfigError",
    "MCPTokenError",
    "MCPToolInvocationError",
    "UnknownIdentityModeError",
]


class MCPTokenError(Exception):
    """No identity could be obtained or forwarded, so the tool was not run (fail closed).

    Raised as such for issuer faults: transport errors, timeouts, 5xx after retries, bad
    JSON or a malformed response; and for refusals with no class of their own (400
    invalid_request, 404 unknown_user). `retriable` says whether trying again later can help:
    a fault can pass, a 4xx refusal will not. Subclasses fix both as class attributes.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, error_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code

    @property
    def retriable(self) -> bool:
        return self.status_code is None or not 400 <= self.status_code < 500

    @property
    def user_message(self) -> str:
        if self.retriable:
            return "The identity service is unavailable right now. Please try again in a moment."
        return "Your account is not set up for this tool. Please contact your administrator."


class MCPNoRefreshTokenError(MCPTokenError):
    """The user never signed in with SSO, so the issuer holds no grant to mint from (428)."""

    user_message = "Sign in with your company account (SSO) to use this tool."
    retriable = False


class MCPIdentityRefreshError(MCPTokenError):
    """The user's SSO grant was revoked, expired or refused by the IdP, or policy denies it (401/403)."""

    user_message = "Your company sign-in has expired or access was revoked. Sign in again to use this tool."
    retriable = False


class MCPIssuerConfigError(MCPTokenError):
    """The issuer rejected this host's credentials (401 invalid_client): an operator must fix it."""

    user_message = "This tool is misconfigured. Please contact your administrator."
    retriable = False


class MCPMissingUserError(MCPTokenError):
    """Identity forwarding is on but the call carries no user; refused before any network I/O."""

    user_message = "This tool acts on behalf of a signed-in user and cannot run without one."
    retriable = False


class MCPCredentialRequiredError(MCPTokenError):
    """`end_user_credential` mode and the user has no usable credential for this provider.

    `reason` is "missing", "expired", or "server_changed" (the provider's `server_url` is no
    longer the one the credential was connected for, so it is not sent there).
    """

    user_message = "Connect your account for this tool to continue."
    retriable = False

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class MCPIdentityForwardingError(MCPTokenError):
    """The MCP server rejected the forwarded identity (HTTP 401/403).

    `error` and `error_description` are what the server's RFC 6750 Bearer challenge said
    (`invalid_token`, `wrong audience`, say), or None where it said nothing; `error_code`
    repeats `error`. They are also in the message. The cached token is evicted; the call is
    never retried with another identity.
    """

    user_message = (
        "The tool's server did not accept your identity. Sign in again or contact your administrator."
    )
    retriable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, error_code=error)
        self.error = error
        self.error_description = error_description

    @property
    def reason(self) -> str | None:
        """The server's reason in one phrase: `invalid_token (wrong audience)`; None if it gave none."""
        if self.error and self.error_description:
            return f"{self.error} ({self.error_description})"
        return self.error or self.error_description


class MCPToolInvocationError(Exception):
    """The MCP server could not be reached or spoke something other than MCP (not an identity fault).

    `status_code` is the HTTP error status the server answered with (503 while it cannot fetch
    its issuer's keys, say), or None when no answer came (unreachable, timed out).
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def user_message(self) -> str:
        if self.status_code is None:
            return "The tool's server could not be reached. Please try again later."
        if self.status_code == 503:
            return "The tool's server is temporarily unavailable. Please try again in a moment."
        return "The tool's server could not handle the request. Please try again later."


class MCPProviderConfigError(ValueError):
    """A provider's stored or given configuration is invalid (bad URL, header name, ...)."""

    user_message = "This tool is misconfigured. Please contact your administrator."


class UnknownIdentityModeError(MCPProviderConfigError):
    """A stored identity mode is not one this runtime knows; it is never treated as `off`."""
