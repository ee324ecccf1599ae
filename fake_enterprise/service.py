"""The issuer's rules: who gets a token for which audience, and the admin operations.

Everything here is synchronous and thread-safe; the HTTP layer runs it in worker threads, or
inline on the event loop where that is faster (issue-token for ES256/EdDSA, JWKS; see app.py).
"""

from __future__ import annotations

import secrets
from typing import Any

from fake_enterprise.crypto import DataCipher, DataKeyError, SealedDataError, resolve_data_key
from fake_enterprise.directory import Directory, TenantPolicy, UnknownUserError, User, UserExistsError
from fake_enterprise.errors import IssuerError
from fake_enterprise.faults import FaultSwitch
from fake_enterprise.keyring import KeyRing
from fake_enterprise.minting import MintError, TokenMinter
from fake_enterprise.oauth import AuthorizationServer, openid_configuration
from fake_enterprise.settings import IssuerSettings
from fake_enterprise.storage import Database, check_database_path
from fake_enterprise.token_events import TokenEvents

__all__ = ["ISSUE_TOKEN_PATH", "IssuerService"]

ISSUE_TOKEN_PATH = "/inner/api/mcp/issue-token"
_KEY_CHECK_CONTEXT = "data-key-check"


def _check_data_key(db: Database, cipher: DataCipher) -> None:
    """Fail at start, not at the first grant, when the data key does not belong to this database."""
    with db.transaction() as conn:
        row = conn.execute("SELECT value FROM meta WHERE name = 'data_key_check'").fetchone()
        if row is None:
            sealed = cipher.seal(secrets.token_bytes(16), _KEY_CHECK_CONTEXT)
            conn.execute("INSERT INTO meta (name, value) VALUES ('data_key_check', ?)", (sealed,))
            return
    try:
        cipher.open(row["value"], _KEY_CHECK_CONTEXT)
    except SealedDataError as exc:
        raise DataKeyError(
            f"the data key does not open database {db.path}: it was created with another key. Restore"
            " that key (its key file or $MCP_IDFWD_DATA_KEY), or start fresh: move the database away"
        ) from exc


class IssuerService:
    def __init__(self, settings: IssuerSettings) -> None:
        self.settings = settings
        check_database_path(settings.db_path)
        cipher = DataCipher(resolve_data_key(settings.data_key, settings.db_path, settings.data_key_file))
        self._db = Database(settings.db_path)
        try:
            _check_data_key(self._db, cipher)
            self.directory = Directory(self._db, cipher, settings.clock)
            self.keyring = KeyRing(
                self._db,
                cipher,
                clock=settings.clock,
                grace=settings.retired_key_grace,
                max_retention=settings.max_key_retention,
                write_ahead=settings.token_ttl,
            )
            self.keyring.load(settings.alg)
            self.faults = FaultSwitch(self._db)
            self.events = TokenEvents(self._db, settings.clock)
            self.oauth = AuthorizationServer(
                settings, self._db, cipher, self.directory, self.keyring, self.faults
            )
        except BaseException:
            self._db.close()
            raise
        self.minter = TokenMinter(settings, self.keyring)

    def close(self) -> None:
        self.events.close()
        self._db.close()

    def discovery(self) -> dict[str, Any]:
        return openid_configuration(self.settings, f"{self.settings.base_url}{ISSUE_TOKEN_PATH}")

    def jwks(self) -> dict[str, Any]:
        return self.keyring.jwks()

    def issue_token(
        self, *, tenant_id: str, user_id: str, app_id: str, audience: str, user_type: str
    ) -> dict[str, Any]:
        policy, user, grant = self.directory.lookup(tenant_id, user_id)
        if policy.deny:
            raise IssuerError(403, "policy_denied", f"tenant {tenant_id!r} is not allowed to obtain tokens")
        if user is None:
            raise IssuerError(404, "unknown_user", f"no user {user_id!r} in tenant {tenant_id!r}")
        if not policy.allows(audience):
            raise IssuerError(403, "policy_denied", f"audience {audience!r} is not allowed for this tenant")
        if grant is None:
            raise IssuerError(428, "no_refresh_token", f"user {user_id!r} has never signed in with SSO")
        if grant.revoked_at is not None:
            raise IssuerError(401, "refresh_rejected", f"the SSO grant of user {user_id!r} was revoked")
        if grant.expires_at is not None and grant.expires_at <= self.settings.clock():
            raise IssuerError(401, "refresh_rejected", f"the SSO grant of user {user_id!r} has expired")
        try:
            self.directory.open_grant(user, grant)
        except SealedDataError as exc:
            message = f"the SSO grant of user {user_id!r} is unusable"
            raise IssuerError(401, "refresh_rejected", message) from exc
        issued = self.minter.issue(user, audience=audience, app_id=app_id, user_type=user_type)
        return {"token": issued.token, "expires_at": issued.expires_at, "token_type": "Bearer"}

    def create_user(self, user: User) -> dict[str, Any]:
        try:
            created = self.directory.create_user(user)
        except UserExistsError as exc:
            raise IssuerError(409, "user_exists", str(exc)) from exc
        return {
            "tenant_id": created.tenant_id,
            "user_id": created.user_id,
            "sub": created.subject,
            "email": created.email,
            "name": created.name,
            "token_profile": created.token_profile,
        }

    def put_grant(
        self, tenant_id: str, user_id: str, *, refresh_token: str | None, expires_at: int | None
    ) -> dict[str, Any]:
        token = refresh_token or secrets.token_urlsafe(32)
        try:
            grant = self.directory.put_grant(tenant_id, user_id, token, expires_at)
        except UnknownUserError as exc:
            raise IssuerError(404, "unknown_user", str(exc)) from exc
        return {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "granted_at": grant.granted_at,
            "expires_at": grant.expires_at,
        }

    def revoke_grant(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        try:
            revoked = self.directory.revoke_grant(tenant_id, user_id)
        except UnknownUserError as exc:
            raise IssuerError(404, "unknown_user", str(exc)) from exc
        return {"tenant_id": tenant_id, "user_id": user_id, "revoked": revoked}

    def set_policy(self, tenant_id: str, policy: TenantPolicy) -> dict[str, Any]:
        self.directory.set_policy(tenant_id, policy)
        audiences = None if policy.allowed_audiences is None else list(policy.allowed_audiences)
        return {"tenant_id": tenant_id, "deny": policy.deny, "allowed_audiences": audiences}

    def rotate_keys(self, alg: str | None) -> dict[str, Any]:
        key = self.keyring.rotate(alg)
        return {"kid": key.kid, "alg": key.alg}

    def mint(
        self,
        claims: dict[str, Any] | None,
        *,
        header: dict[str, Any] | None,
        ttl: int | None,
        hmac_key: str | None,
        raw_header: str | None = None,
        raw_claims: str | None = None,
    ) -> dict[str, Any]:
        try:
            token = self.minter.mint(
                claims,
                header=header,
                ttl=ttl,
                hmac_key=hmac_key,
                raw_header=raw_header,
                raw_claims=raw_claims,
            )
            return {"token": token}
        except MintError as exc:
            raise IssuerError(400, "invalid_request", str(exc)) from exc
