"""Checking an ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant, MCP enterprise-managed authorization).

The JOSE and JWT checks are `JWKSTokenVerifier`'s, one per trusted identity provider, set up
for ID-JAGs: header `typ` must be `oauth-id-jag+jwt`; `alg` on the allow-list (never `none`);
no token-supplied keys; the signature by a key the IdP publishes under that `kid`; `iss` = the
IdP; `aud` = this authorization server's issuer; `exp`/`iat`/`nbf` with leeway; `sub`, `jti` and
`client_id` present. On top of those, this module checks what only an authorization server can:
the `client_id` claim is the client that authenticated, the `resource` claim is this server,
the lifetime is short, and the scope claim is well formed. Replay (`jti`) is the provider's.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import httpx
from mcp.server.auth.provider import TokenError

from fake_mcp_server.authorization.settings import AuthorizationServerSettings
from fake_mcp_server.errors import SigningKeysUnavailable, TokenRejected
from fake_mcp_server.settings import VerifierSettings
from fake_mcp_server.verifier import JWKSTokenVerifier

__all__ = ["ID_JAG_TYPE", "IdJagValidator", "IdentityProviderUnavailable"]

ID_JAG_TYPE = "oauth-id-jag+jwt"
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id")


class IdentityProviderUnavailable(Exception):
    """The identity provider's signing keys cannot be fetched: no ID-JAG of it can be checked now."""


def _refused(description: str) -> TokenError:
    return TokenError(error="invalid_grant", error_description=description)


def _unverified_issuer(assertion: str) -> str:
    """The `iss` the assertion claims, read only to pick which IdP's keys will check it."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _refused("the assertion is not a signed JWT")
    segment = parts[1]
    try:
        payload = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise _refused("the assertion is not a signed JWT") from None
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    if not isinstance(issuer, str):
        raise _refused("the assertion has no issuer")
    return issuer


class IdJagValidator:
    """Checks ID-JAGs addressed to the authorization server `issuer` for the resource `resource_url`."""

    def __init__(
        self,
        settings: AuthorizationServerSettings,
        *,
        issuer: str,
        resource_url: str,
        http_client: httpx.AsyncClient,
    ) -> None:
        self._settings = settings
        self._resource_url = resource_url
        self._verifiers = {
            idp: JWKSTokenVerifier(
                VerifierSettings(
                    audience=issuer,
                    issuer=idp,
                    algorithms=settings.algorithms,
                    leeway=settings.leeway,
                    required_claims=_REQUIRED_CLAIMS,
                    accepted_types=(ID_JAG_TYPE,),
                    max_token_bytes=settings.max_assertion_bytes,
                    # Every presentation is checked afresh; the replay check comes after.
                    cache_size=0,
                ),
                http_client=http_client,
            )
            for idp in settings.trusted_idps
        }

    async def aclose(self) -> None:
        for verifier in self._verifiers.values():
            await verifier.aclose()

    async def validate(self, assertion: str, *, client_id: str) -> dict[str, Any]:
        """The ID-JAG's claims if `client_id` may redeem it here; `TokenError` (invalid_grant) if not.

        Raises `IdentityProviderUnavailable` when the issuing IdP's keys cannot be fetched.
        """
        if len(assertion) > self._settings.max_assertion_bytes or not assertion.isascii():
            raise _refused("the assertion is not a signed JWT")
        verifier = self._verifiers.get(_unverified_issuer(assertion))
        if verifier is None:
            raise _refused("the assertion's issuer is not a trusted identity provider")
        try:
            verified = await verifier.verify(assertion)
        except SigningKeysUnavailable:
            raise IdentityProviderUnavailable("the IdP's signing keys are unavailable") from None
        except TokenRejected as exc:
            raise _refused(f"assertion refused: {exc.description}") from None
        claims = verified.claims or {}
        self._check_client(claims, client_id)
        self._check_resource(claims)
        self._check_lifetime(claims)
        scope = claims.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise _refused("assertion refused: invalid scope claim")
        return claims

    def _check_client(self, claims: dict[str, Any], client_id: str) -> None:
        # The ID-JAG names the client the IdP issued it to; any other client presenting it holds
        # a stolen (or misdirected) grant, even though it authenticated as itself.
        if claims.get("client_id") != client_id:
            raise _refused("the assertion was issued to another client")

    def _check_resource(self, claims: dict[str, Any]) -> None:
        # The access token is audience-restricted to the ID-JAG's `resource`, so it must be us.
        resource = claims.get("resource")
        if resource is None:
            raise _refused("the assertion names no resource")
        resources = [resource] if isinstance(resource, str) else resource
        if not isinstance(resources, list) or self._resource_url not in resources:
            raise _refused("the assertion is for another resource")

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        # The verifier has checked exp and iat are numbers, exp not past and iat not in the future.
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > self._settings.max_assertion_lifetime:
            raise _refused(
                f"assertion refused: lifetime over {self._settings.max_assertion_lifetime:g} seconds"
            )
        if lifetime <= 0:
            raise _refused("assertion refused: exp is not after iat")
