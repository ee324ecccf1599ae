"""The IdP's half of enterprise-managed authorization: an ID token in, an ID-JAG out (RFC 8693).

draft-ietf-oauth-identity-assertion-authz-grant §4.3 and the MCP extension §4: the client
(confidential) sends the user's ID token with `requested_token_type=...:id-jag`, `audience` = the
MCP authorization server's issuer and `resource` = the MCP server. `TokenExchange.verify_subject`
has checked the ID token (our signature and `iss`, unexpired, `aud` = the authenticated client),
the user's SSO grant and the tenant policy (`deny`, `allowed_audiences` against the resource);
here the tenant's ID-JAG allow-list decides, and the grant is signed with `typ: oauth-id-jag+jwt`.
The answer is the draft's: `issued_token_type` id-jag, `token_type` `N_A`, no refresh token.
"""

from __future__ import annotations

from typing import Any

from fake_enterprise.oauth.errors import OAuthError
from fake_enterprise.oauth.exchange import (
    ID_JAG_URN,
    ID_TOKEN_URN,
    ExchangeRequest,
    TokenExchange,
    VerifiedSubject,
)
from fake_enterprise.oauth.id_jag_policy import IdJagPolicyStore
from fake_enterprise.oauth.tokens import OAuthTokens, user_claims
from fake_enterprise.settings import IssuerSettings

__all__ = ["ID_JAG_MAX_LIFETIME", "IdJagIssuer"]

# The MCP extension and the issue: an ID-JAG lives at most five minutes (the AS refuses longer).
ID_JAG_MAX_LIFETIME = 300
_MAX_AUDIENCE_CHARS = 2048


class IdJagIssuer:
    """Issues ID-JAGs through a `TokenExchange`; `register` plugs it in."""

    def __init__(self, settings: IssuerSettings, tokens: OAuthTokens, policies: IdJagPolicyStore) -> None:
        self._settings = settings
        self._tokens = tokens
        self._policies = policies

    def register(self, exchange: TokenExchange) -> None:
        exchange.request_checks[ID_JAG_URN] = self.check_request
        exchange.issuers[ID_JAG_URN] = self.issue

    def check_request(self, request: ExchangeRequest) -> None:
        """The request's own rules, before the subject token is looked at."""
        if not request.client.client_secret:
            # Draft §7.1: only for confidential clients; a public client uses the code flow at the AS.
            raise OAuthError("unauthorized_client", "ID-JAGs are issued to confidential clients only")
        if request.subject_token_type != ID_TOKEN_URN:
            raise OAuthError("invalid_request", f"an ID-JAG is issued for an ID token ({ID_TOKEN_URN})")
        if request.audience is None:
            raise OAuthError(
                "invalid_request", "audience (the MCP authorization server's issuer) is required"
            )
        if len(request.audience) > _MAX_AUDIENCE_CHARS:
            raise OAuthError("invalid_target", f"audience must be at most {_MAX_AUDIENCE_CHARS} characters")
        if request.resource is None:
            raise OAuthError("invalid_request", "resource (the MCP server) is required")

    def issue(self, request: ExchangeRequest, subject: VerifiedSubject) -> dict[str, Any]:
        user = subject.user
        audience, resource = request.audience, request.resource
        assert audience is not None and resource is not None  # check_request requires them
        client_id = request.client.client_id
        policy = self._policies.get(user.tenant_id)
        if policy is None:
            raise OAuthError(
                "invalid_target",
                f"tenant {user.tenant_id!r} has no ID-JAG policy, so no client may get ID-JAGs",
            )
        grant = policy.permit(user.tenant_id, client_id, audience, resource)
        scopes = grant.granted_scopes(request.scopes)
        claims: dict[str, Any] = {
            **user_claims(user),
            # The draft's name for the tenant of a multi-tenant issuer, beside our `tenant_id`.
            "tenant": user.tenant_id,
            "aud": audience,
            "resource": resource,
            # The client as the MCP authorization server knows it (draft §5, client ID mapping).
            "client_id": grant.client_id or client_id,
        }
        if scopes:
            claims["scope"] = " ".join(scopes)
        auth_time = subject.claims.get("auth_time")
        if isinstance(auth_time, int) and not isinstance(auth_time, bool):
            claims["auth_time"] = auth_time
        lifetime = min(self._settings.token_ttl, ID_JAG_MAX_LIFETIME)
        issued = self._tokens.id_jag(claims, lifetime)
        answer: dict[str, Any] = {
            "access_token": issued.token,
            "issued_token_type": ID_JAG_URN,
            # Not an OAuth access token: nobody may send it as a Bearer (draft §4.3.2).
            "token_type": "N_A",
            "expires_in": issued.expires_in,
        }
        if scopes:
            answer["scope"] = claims["scope"]
        return answer
