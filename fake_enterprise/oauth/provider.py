"""The mcp SDK's `OAuthAuthorizationServerProvider`, implemented over the issuer's users and grants.

The SDK's handlers parse and check the requests (client, redirect URI, scope, PKCE S256, code
expiry, client authentication); this provider decides who gets what, signs the tokens and keeps
codes one-time and refresh tokens rotating, with reuse revoking the whole family.
"""

from __future__ import annotations

import secrets
import time
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode

import anyio
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.concurrency import run_in_threadpool

from fake_enterprise.oauth.access import AccessRefused, UserAccess, forced_oauth_error
from fake_enterprise.oauth.clients import ClientStore, RegisteredClient
from fake_enterprise.oauth.grants import GrantStore, new_token
from fake_enterprise.oauth.pending import PendingStore
from fake_enterprise.oauth.tokens import ACCESS_TOKEN_TYPE, OAuthTokens, UnreadableToken
from fake_enterprise.settings import IssuerSettings

__all__ = [
    "SIGN_IN_PATH",
    "AuthorizationExtras",
    "IssuerAccessToken",
    "IssuerAuthorizationCode",
    "IssuerOAuthProvider",
    "IssuerRefreshToken",
    "PendingSignIn",
    "TokenResponse",
    "authorization_extras",
]

SIGN_IN_PATH = "/oauth/sign-in"
DEFAULT_SCOPES = ("openid", "profile", "email")
SUPPORTED_SCOPES = (*DEFAULT_SCOPES, "offline_access")


@dataclass(frozen=True)
class AuthorizationExtras:
    """OIDC request parameters the SDK's authorization handler does not carry to the provider."""

    nonce: str | None = None
    login_hint: str | None = None


# Set by the authorization endpoint around the SDK handler's call into `authorize`.
authorization_extras: ContextVar[AuthorizationExtras] = ContextVar("authorization_extras")


class IssuerAuthorizationCode(AuthorizationCode):
    family_id: str
    nonce: str | None = None
    auth_time: int


class IssuerRefreshToken(RefreshToken):
    family_id: str
    auth_time: int


class IssuerAccessToken(AccessToken):
    jti: str


class TokenResponse(OAuthToken):
    """The SDK's token response plus the OIDC `id_token` (Core §3.1.3.3)."""

    id_token: str | None = None


@dataclass
class PendingSignIn:
    """An authorization request waiting for the user on the sign-in page."""

    request_id: str
    client: RegisteredClient
    params: AuthorizationParams
    extras: AuthorizationExtras
    expires_at: float
    hint: tuple[str, str] | None = field(default=None)

    @property
    def audience(self) -> str:
        return self.params.resource or ""


def parse_login_hint(hint: str | None) -> tuple[str, str] | None:
    """`<tenant_id>/<user_id>` as a pair, or None when the hint is absent or not of that form."""
    if not hint or hint.count("/") != 1:
        return None
    tenant_id, user_id = hint.split("/")
    return (tenant_id, user_id) if tenant_id and user_id else None


def _wall_clock(expires_at: int, now: float) -> float:
    # The SDK compares expiry with time.time(); hand it the remaining lifetime on that clock.
    return time.time() + (expires_at - now)


class IssuerOAuthProvider:
    def __init__(
        self,
        settings: IssuerSettings,
        clients: ClientStore,
        grants: GrantStore,
        tokens: OAuthTokens,
        access: UserAccess,
        pending: PendingStore,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.grants = grants
        self.tokens = tokens
        self.access = access
        self._pending = pending

    def audience_of(self, resource: str | None) -> str:
        """The access token's `aud`: the RFC 8707 resource, else the issuer itself (usable nowhere else)."""
        return resource or self.settings.issuer_url

    # --- clients ----------------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> RegisteredClient | None:
        return await run_in_threadpool(self.clients.get, client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        if not client_info.scope:
            # Registered without scopes (some clients send ""): it may ask for any scope we have.
            client_info.scope = " ".join(SUPPORTED_SCOPES)
        await run_in_threadpool(self.clients.add, client_info, source="dynamic")

    # --- authorization ----------------------------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        assert isinstance(client, RegisteredClient)  # get_client returns nothing else
        extras = authorization_extras.get(AuthorizationExtras())
        now = self.settings.clock()
        pending = PendingSignIn(
            request_id=secrets.token_urlsafe(24),
            client=client,
            params=params,
            extras=extras,
            expires_at=now + self.settings.sign_in_ttl,
            hint=parse_login_hint(extras.login_hint),
        )
        if self.settings.auto_login and pending.hint is not None:
            tenant_id, user_id = pending.hint
            try:
                return await self.complete_sign_in(pending, tenant_id, user_id)
            except AccessRefused as exc:
                if exc.kind != "unknown_user":
                    raise AuthorizeError("access_denied", exc.description) from None
                # An unknown hinted user gets the page, where a person can pick someone else.
        await run_in_threadpool(self.put_back, pending)
        return f"{self.settings.base_url}{SIGN_IN_PATH}?{urlencode({'request': pending.request_id})}"

    def pending(self, request_id: str, *, take: bool = False) -> PendingSignIn | None:
        """The unexpired pending request; with `take` it is removed: a sign-in form answers once.

        Kept in the database: the page and its submission may reach different worker processes.
        """
        record = self._pending.get(request_id, take=take)
        if record is None:
            return None
        client, params, extras, expires_at = record
        return PendingSignIn(
            request_id=request_id,
            client=client,
            params=params,
            extras=AuthorizationExtras(**extras),
            expires_at=expires_at,
            hint=parse_login_hint(extras.get("login_hint")),
        )

    def take_pending(self, request_id: str) -> PendingSignIn | None:
        """The pending request, removed: a sign-in form answers once."""
        return self.pending(request_id, take=True)

    def put_back(self, pending: PendingSignIn) -> None:
        """Store a request for the page (again, after a sign-in attempt that did not complete)."""
        self._pending.put(
            pending.request_id,
            client_id=pending.client.client_id,
            params=pending.params,
            extras=asdict(pending.extras),
            expires_at=pending.expires_at,
        )

    def redirect(self, pending: PendingSignIn, **params: str | None) -> str:
        """The client's redirect URI with `params`, `state` and `iss` (RFC 9207)."""
        return construct_redirect_uri(
            str(pending.params.redirect_uri),
            **params,
            state=pending.params.state,
            iss=self.settings.issuer_url,
        )

    async def complete_sign_in(self, pending: PendingSignIn, tenant_id: str, user_id: str) -> str:
        """Sign the user in for `pending`: their SSO grant is stored and a code goes to the client.

        `AccessRefused` if the user or the policy says no; `AuthorizeError` for an injected fault.
        """
        faults = self.access.faults.current
        if faults.latency_ms:
            await anyio.sleep(faults.latency_ms / 1000)
        if faults.issue_token_status is not None:
            raise AuthorizeError(
                "temporarily_unavailable" if faults.issue_token_status == 503 else "server_error",
                f"sign-in answers {faults.issue_token_status} (injected fault, {forced_oauth_error(faults)})",
            )
        code = await run_in_threadpool(self._issue_code, pending, tenant_id, user_id)
        return self.redirect(pending, code=code)

    def _issue_code(self, pending: PendingSignIn, tenant_id: str, user_id: str) -> str:
        params = pending.params
        user = self.access.check(tenant_id, user_id, self.audience_of(params.resource), require_grant=False)
        self.access.sign_in(user, new_token())
        now = int(self.settings.clock())
        family_id = self.grants.start_family(
            client_id=pending.client.client_id,
            tenant_id=tenant_id,
            user_id=user_id,
            scopes=tuple(params.scopes) if params.scopes else DEFAULT_SCOPES,
            resource=params.resource,
            auth_time=now,
        )
        code = new_token()
        self.grants.add_code(
            code,
            family_id=family_id,
            redirect_uri=str(params.redirect_uri),
            redirect_uri_explicit=params.redirect_uri_provided_explicitly,
            code_challenge=params.code_challenge,
            nonce=pending.extras.nonce,
            ttl=self.settings.authorization_code_ttl,
        )
        return code

    # --- authorization code -----------------------------------------------------------------------

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> IssuerAuthorizationCode | None:
        return await run_in_threadpool(self._load_code, client.client_id, authorization_code)

    def _load_code(self, client_id: str, code: str) -> IssuerAuthorizationCode | None:
        record = self.grants.code(code)
        if record is None or record.family.client_id != client_id:
            return None
        if record.used or record.family.revoked:
            # RFC 6749 §4.1.2: a code presented twice revokes what it was exchanged for.
            self.grants.revoke_family(record.family.family_id)
            return None
        family = record.family
        return IssuerAuthorizationCode(
            code=code,
            scopes=list(family.scopes),
            expires_at=_wall_clock(record.expires_at, self.settings.clock()),
            client_id=family.client_id,
            code_challenge=record.code_challenge,
            redirect_uri=record.redirect_uri,  # type: ignore[arg-type]  # validated into AnyUrl
            redirect_uri_provided_explicitly=record.redirect_uri_explicit,
            resource=family.resource,
            family_id=family.family_id,
            nonce=record.nonce,
            auth_time=family.auth_time,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: IssuerAuthorizationCode
    ) -> TokenResponse:
        return await run_in_threadpool(self._exchange_code, client, authorization_code)

    def _exchange_code(
        self, client: OAuthClientInformationFull, code: IssuerAuthorizationCode
    ) -> TokenResponse:
        if not self.grants.spend_code(code.code):
            self.grants.revoke_family(code.family_id)
            raise TokenError("invalid_grant", "the authorization code was already used")
        record = self.grants.code(code.code)
        assert record is not None  # just spent
        return self._tokens_for(
            client, record.family.tenant_id, record.family.user_id, code, nonce=code.nonce
        )

    # --- refresh tokens ---------------------------------------------------------------------------

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> IssuerRefreshToken | None:
        return await run_in_threadpool(self._load_refresh, client.client_id, refresh_token)

    def _load_refresh(self, client_id: str, token: str) -> IssuerRefreshToken | None:
        record = self.grants.refresh_token(token)
        if record is None or record.family.client_id != client_id:
            return None
        if record.used:
            # A rotated-out refresh token came back: someone holds a copy. End the whole family.
            self.grants.revoke_family(record.family.family_id)
            return None
        if record.family.revoked:
            return None
        family = record.family
        return IssuerRefreshToken(
            token=token,
            client_id=family.client_id,
            scopes=list(family.scopes),
            expires_at=int(_wall_clock(record.expires_at, self.settings.clock())),
            resource=family.resource,
            family_id=family.family_id,
            auth_time=family.auth_time,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: IssuerRefreshToken, scopes: list[str]
    ) -> TokenResponse:
        return await run_in_threadpool(self._exchange_refresh, client, refresh_token, scopes)

    def _exchange_refresh(
        self, client: OAuthClientInformationFull, refresh_token: IssuerRefreshToken, scopes: list[str]
    ) -> TokenResponse:
        if not self.grants.rotate_refresh_token(refresh_token.token):
            self.grants.revoke_family(refresh_token.family_id)
            raise TokenError("invalid_grant", "the refresh token was already used; its family is revoked")
        record = self.grants.refresh_token(refresh_token.token)
        assert record is not None  # just rotated
        narrowed = refresh_token.model_copy(update={"scopes": scopes})
        return self._tokens_for(client, record.family.tenant_id, record.family.user_id, narrowed, nonce=None)

    # --- minting ----------------------------------------------------------------------------------

    def _tokens_for(
        self,
        client: OAuthClientInformationFull,
        tenant_id: str,
        user_id: str,
        grant: IssuerAuthorizationCode | IssuerRefreshToken,
        *,
        nonce: str | None,
    ) -> TokenResponse:
        audience = self.audience_of(grant.resource)
        try:
            user = self.access.check(tenant_id, user_id, audience)
        except AccessRefused as exc:
            raise TokenError(
                "invalid_target" if exc.kind == "audience" else "invalid_grant", exc.description
            ) from None
        auth_time = grant.auth_time
        scopes = tuple(grant.scopes)
        issued = self.tokens.access_token(
            user, client_id=client.client_id, audience=audience, scopes=scopes, auth_time=auth_time
        )
        self.grants.record_access_token(issued.jti, grant.family_id, issued.expires_at)
        id_token = None
        if "openid" in scopes:
            id_token = self.tokens.id_token(
                user, client_id=client.client_id, nonce=nonce, auth_time=auth_time
            )
        refresh = None
        if "refresh_token" in client.grant_types:
            refresh = self.grants.add_refresh_token(grant.family_id, self.settings.refresh_token_ttl)
        return TokenResponse(
            access_token=issued.token,
            expires_in=issued.expires_in,
            scope=" ".join(scopes),
            refresh_token=refresh,
            id_token=id_token,
        )

    # --- access tokens and revocation -------------------------------------------------------------

    async def load_access_token(self, token: str) -> IssuerAccessToken | None:
        return await run_in_threadpool(self.read_access_token, token)

    def read_access_token(self, token: str) -> IssuerAccessToken | None:
        """An access token this server issued and has not revoked, else None."""
        try:
            header, claims = self.tokens.read(token)
        except UnreadableToken:
            return None
        jti = claims.get("jti")
        if header.get("typ") != ACCESS_TOKEN_TYPE or not isinstance(jti, str):
            return None
        if not self.grants.access_token_active(jti):
            return None
        scope = claims.get("scope")
        return IssuerAccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=scope.split() if isinstance(scope, str) else [],
            expires_at=int(claims["exp"]),
            resource=claims.get("aud") if isinstance(claims.get("aud"), str) else None,
            subject=claims.get("sub"),
            claims=claims,
            jti=jti,
        )

    async def revoke_token(self, token: IssuerAccessToken | IssuerRefreshToken) -> None:
        await run_in_threadpool(self.revoke_now, token)

    def revoke_now(self, token: IssuerAccessToken | IssuerRefreshToken) -> None:
        """Revoke the token and the family it belongs to (the SDK asks for both, RFC 7009 §2.1 allows it)."""
        if isinstance(token, IssuerRefreshToken):
            self.grants.revoke_family(token.family_id)
            return
        family_id = self.grants.access_token_family(token.jti)
        self.grants.revoke_access_token(token.jti)
        if family_id is not None:
            self.grants.revoke_family(family_id)
