"""Identity modes: how a provider's MCP calls identify the end user."""

from __future__ import annotations

from enum import StrEnum

from client_runtime.errors import UnknownIdentityModeError

__all__ = ["IdentityMode"]


class IdentityMode(StrEnum):
    """How a provider's calls identify the end user (adding a mode is one line).

    `off`: no forwarding, the provider's static headers only. `idp_token`: a token the
    enterprise issuer mints for this user and this server. `end_user_credential`: the end
    user's own stored credential for this provider. `token_exchange`: the user's ID token
    exchanged at the IdP (RFC 8693) for an access token bound to this server. `id_jag`: the
    user's ID token exchanged at the IdP for an ID-JAG, which the server's own authorization
    server turns into its access token (enterprise-managed authorization, SEP-990).
    """

    OFF = "off"
    IDP_TOKEN = "idp_token"
    END_USER_CREDENTIAL = "end_user_credential"
    TOKEN_EXCHANGE = "token_exchange"
    ID_JAG = "id_jag"

    @classmethod
    def parse(cls, value: object) -> IdentityMode:
        """The mode named by a stored or configured `value`; anything unknown raises.

        An unknown value is rejected here, at the boundary, rather than silently read as
        `off` (which would downgrade a forwarding provider to the platform's identity).
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        raise UnknownIdentityModeError(
            f"unknown identity mode {value!r:.64}; expected one of {[m.value for m in cls]}"
        )

    @property
    def forwards_identity(self) -> bool:
        """Whether calls in this mode act as a specific end user (and so need one)."""
        return self is not IdentityMode.OFF
