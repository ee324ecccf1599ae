"""RFC 8693 token exchange: one of our ID or access tokens in, an audience-bound token out.

The token the client asks for (`requested_token_type`) picks an entry of `TokenExchange.issuers`:
the access token here, the ID-JAG of the enterprise-managed authorization extension in `id_jag`.
Each is issued against the same verified subject; an entry of `request_checks` may first hold the
request to that token type's own rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData

from fake_enterprise.directory import User
from fake_enterprise.oauth.access import AccessRefused
from fake_enterprise.oauth.clients import RegisteredClient
from fake_enterprise.oauth.errors import OAuthError
from fake_enterprise.oauth.provider import DEFAULT_SCOPES, IssuerOAuthProvider
from fake_enterprise.oauth.tokens import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, UnreadableToken, user_claims

__all__ = [
    "ACCESS_TOKEN_URN",
    "ID_JAG_URN",
    "ID_TOKEN_URN",
    "JWT_URN",
    "TOKEN_EXCHANGE_GRANT",
    "ExchangeRequest",
    "TokenExchange",
    "VerifiedSubject",
]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_URN = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN_URN = "urn:ietf:params:oauth:token-type:id_token"
ID_JAG_URN = "urn:ietf:params:oauth:token-type:id-jag"
JWT_URN = "urn:ietf:params:oauth:token-type:jwt"
_SUBJECT_TOKEN_TYPES = (ACCESS_TOKEN_URN, ID_TOKEN_URN, JWT_URN)
_MAX_TOKEN_CHARS = 16_384


@dataclass(frozen=True)
class ExchangeRequest:
    client: RegisteredClient
    subject_token: str
    subject_token_type: str
    requested_token_type: str
    resource: str | None
    audience: str | None
    scopes: tuple[str, ...] | None

    @property
    def target(self) -> str:
        """What the issued token is for: the resource (RFC 8707), else the logical audience."""
        target = self.resource or self.audience
        assert target is not None  # parse() requires one
        return target


@dataclass(frozen=True)
class VerifiedSubject:
    """The user a subject token speaks for, and what it says."""

    user: User
    claims: dict[str, Any]
    scopes: tuple[str, ...]
    family_id: str | None


Issue = Callable[[ExchangeRequest, VerifiedSubject], dict[str, Any]]
CheckRequest = Callable[[ExchangeRequest], None]


def _single(form: FormData, name: str, *, error: str = "invalid_request") -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise OAuthError(error, f"{name} may be given only once")
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str) or not value:
        raise OAuthError(error, f"{name} must be a non-empty string")
    return value


def _check_resource(resource: str) -> str:
    parts = urlsplit(resource)
    if not parts.scheme or not parts.netloc or parts.fragment or "#" in resource:
        raise OAuthError("invalid_target", "resource must be an absolute URI without a fragment (RFC 8707)")
    return resource


class TokenExchange:
    def __init__(self, provider: IssuerOAuthProvider) -> None:
        self._provider = provider
        self.issuers: dict[str, Issue] = {ACCESS_TOKEN_URN: self._issue_access_token}
        self.request_checks: dict[str, CheckRequest] = {}

    def parse(self, form: FormData, client: RegisteredClient) -> ExchangeRequest:
        subject_token = _single(form, "subject_token")
        subject_token_type = _single(form, "subject_token_type")
        if subject_token is None or subject_token_type is None:
            raise OAuthError("invalid_request", "subject_token and subject_token_type are required")
        if len(subject_token) > _MAX_TOKEN_CHARS:
            raise OAuthError("invalid_request", "subject_token is too long")
        if subject_token_type not in _SUBJECT_TOKEN_TYPES:
            raise OAuthError(
                "invalid_request", f"subject_token_type must be one of {', '.join(_SUBJECT_TOKEN_TYPES)}"
            )
        if form.get("actor_token") is not None:
            raise OAuthError("invalid_request", "actor_token (delegation) is not supported")
        requested = _single(form, "requested_token_type") or ACCESS_TOKEN_URN
        if requested not in self.issuers:
            raise OAuthError(
                "invalid_request", f"requested_token_type must be one of {', '.join(sorted(self.issuers))}"
            )
        resource = _single(form, "resource", error="invalid_target")
        audience = _single(form, "audience", error="invalid_target")
        if resource is None and audience is None:
            raise OAuthError("invalid_request", "resource or audience is required")
        scope = _single(form, "scope")
        request = ExchangeRequest(
            client=client,
            subject_token=subject_token,
            subject_token_type=subject_token_type,
            requested_token_type=requested,
            resource=None if resource is None else _check_resource(resource),
            audience=audience,
            scopes=None if scope is None else tuple(scope.split()),
        )
        check = self.request_checks.get(requested)
        if check is not None:
            check(request)
        return request

    def exchange(self, request: ExchangeRequest) -> dict[str, Any]:
        subject = self.verify_subject(request)
        return self.issuers[request.requested_token_type](request, subject)

    def verify_subject(self, request: ExchangeRequest) -> VerifiedSubject:
        """The subject token's user: our signature and `iss`, unexpired, meant for this client."""
        provider = self._provider
        try:
            header, claims = provider.tokens.read(request.subject_token)
        except UnreadableToken as exc:
            raise OAuthError("invalid_grant", f"subject_token refused: {exc}") from None
        client_id = request.client.client_id
        typ = header.get("typ")
        family_id = None
        if typ == ACCESS_TOKEN_TYPE and request.subject_token_type in (ACCESS_TOKEN_URN, JWT_URN):
            if claims.get("client_id") != client_id:
                raise OAuthError("invalid_grant", "subject_token was issued to another client")
            jti = claims.get("jti")
            if not isinstance(jti, str) or not provider.grants.access_token_active(jti):
                raise OAuthError("invalid_grant", "subject_token was revoked")
            family_id = provider.grants.access_token_family(jti)
            scope = claims.get("scope")
            scopes = tuple(scope.split()) if isinstance(scope, str) else ()
        elif typ == ID_TOKEN_TYPE and request.subject_token_type in (ID_TOKEN_URN, JWT_URN):
            audience = claims.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if client_id not in audiences:
                raise OAuthError("invalid_grant", "subject_token is an ID token for another client")
            scopes = DEFAULT_SCOPES
        else:
            raise OAuthError(
                "invalid_grant", "subject_token is not a token of the declared subject_token_type"
            )
        tenant_id, user_id = claims.get("tenant_id"), claims.get("preferred_username")
        if not isinstance(tenant_id, str) or not isinstance(user_id, str):
            raise OAuthError("invalid_grant", "subject_token does not name a user of this issuer")
        try:
            user = provider.access.check(tenant_id, user_id, request.target)
        except AccessRefused as exc:
            code = "invalid_target" if exc.kind == "audience" else "invalid_grant"
            raise OAuthError(code, exc.description) from None
        if user_claims(user)["sub"] != claims.get("sub"):
            raise OAuthError("invalid_grant", "subject_token's sub does not match its user")
        return VerifiedSubject(user=user, claims=claims, scopes=scopes, family_id=family_id)

    def _issue_access_token(self, request: ExchangeRequest, subject: VerifiedSubject) -> dict[str, Any]:
        scopes = subject.scopes if request.scopes is None else request.scopes
        beyond = sorted(set(scopes) - set(subject.scopes))
        if beyond:
            raise OAuthError("invalid_scope", f"scope beyond the subject token's: {' '.join(beyond)}")
        provider = self._provider
        issued = provider.tokens.access_token(
            subject.user,
            client_id=request.client.client_id,
            audience=request.target,
            scopes=scopes,
            auth_time=subject.claims.get("auth_time"),
        )
        provider.grants.record_access_token(issued.jti, subject.family_id, issued.expires_at)
        return {
            "access_token": issued.token,
            "issued_token_type": ACCESS_TOKEN_URN,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": " ".join(scopes),
        }
