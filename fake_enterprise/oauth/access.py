"""Who may get a token for what: the user, their SSO grant and the tenant policy, checked for every grant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fake_enterprise.crypto import SealedDataError
from fake_enterprise.directory import Directory, User
from fake_enterprise.faults import Faults, FaultSwitch

__all__ = ["AccessRefused", "UserAccess", "forced_oauth_error"]

RefusalKind = Literal["unknown_user", "policy", "audience", "grant"]


class AccessRefused(Exception):
    """The user may not get this token; `kind` says why, `description` in words for the client."""

    def __init__(self, kind: RefusalKind, description: str) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description


def forced_oauth_error(faults: Faults) -> str:
    """The OAuth error code sent with a forced status (the fault's own code when it names one)."""
    status = faults.issue_token_status or 500
    if faults.issue_token_error:
        return faults.issue_token_error
    if status == 503:
        return "temporarily_unavailable"
    if status >= 500:
        return "server_error"
    return {400: "invalid_request", 401: "invalid_client"}.get(status, "invalid_grant")


class UserAccess:
    def __init__(self, directory: Directory, faults: FaultSwitch, clock: Callable[[], float]) -> None:
        self._directory = directory
        self.faults = faults
        self._clock = clock

    def check(self, tenant_id: str, user_id: str, audience: str, *, require_grant: bool = True) -> User:
        """The user, if the tenant allows them a token for `audience` and their SSO grant stands."""
        policy, user, grant = self._directory.lookup(tenant_id, user_id)
        if user is None:
            raise AccessRefused("unknown_user", f"no user {user_id!r} in tenant {tenant_id!r}")
        if policy.deny:
            raise AccessRefused("policy", f"tenant {tenant_id!r} is not allowed to obtain tokens")
        if not policy.allows(audience):
            raise AccessRefused("audience", f"audience {audience!r} is not allowed for tenant {tenant_id!r}")
        if not require_grant:
            return user
        if grant is None:
            raise AccessRefused("grant", f"user {user_id!r} has not signed in")
        if grant.revoked_at is not None:
            raise AccessRefused("grant", f"the SSO grant of user {user_id!r} was revoked")
        if grant.expires_at is not None and grant.expires_at <= self._clock():
            raise AccessRefused("grant", f"the SSO grant of user {user_id!r} has expired")
        try:
            self._directory.open_grant(user, grant)
        except SealedDataError:
            raise AccessRefused("grant", f"the SSO grant of user {user_id!r} is unusable") from None
        return user

    def sign_in(self, user: User, grant_token: str) -> None:
        """Store the user's SSO grant, as the enterprise IdP does when someone signs in."""
        self._directory.put_grant(user.tenant_id, user.user_id, grant_token, None)
