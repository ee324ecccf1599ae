"""A synchronous Python client for the issuer's admin and inner APIs (for tests and scripts)."""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["AdminAPIError", "AdminClient", "AdminClientError"]

_SECRET_HEADER = "Enterprise-Api-Secret-Key"


class AdminClientError(Exception):
    """The issuer could not be reached or answered something that is not its API."""


class AdminAPIError(AdminClientError):
    """The issuer answered with an API error: HTTP `status` and its `error` code."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"issuer answered {status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


def _segment(value: str) -> str:
    return quote(value, safe="")


def _without_none(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


class AdminClient:
    """Puts an issuer into any state over HTTP. Use as a context manager, or call `close()`.

    `base_url` is the issuer URL; `admin_secret` opens its admin API (sent as `Authorization:
    Bearer`); `inner_secret`, needed only by `issue_token`, is the host's `Enterprise-Api-Secret-Key`.
    Each secret goes only to its own endpoints and never into errors or the repr.
    """

    def __init__(
        self, base_url: str, admin_secret: str, *, inner_secret: str | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._admin_headers = {"Authorization": f"Bearer {admin_secret}"}
        self._inner_headers = None if inner_secret is None else {_SECRET_HEADER: inner_secret}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"AdminClient({self.base_url!r})"

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            # The exception text names the URL only; the request (and its secret header) stays out.
            raise AdminClientError(f"{method} {self.base_url}{path} failed: {type(exc).__name__}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_success:
            if payload is None:
                raise AdminClientError(f"{method} {path}: {response.status_code} answer is not JSON")
            return payload
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            raise AdminAPIError(response.status_code, payload["error"], str(payload.get("message", "")))
        raise AdminAPIError(response.status_code, "http_error", f"{method} {path} failed")

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, path, body, headers=self._admin_headers)

    def create_user(
        self,
        tenant_id: str,
        user_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        token_profile: str | None = None,
    ) -> dict[str, Any]:
        """Create a user (409 `user_exists` if present). `token_profile` overrides the issuer's."""
        body = _without_none(tenant_id=tenant_id, user_id=user_id, email=email, name=name)
        body.update(_without_none(token_profile=token_profile))
        return self._admin("POST", "/admin/users", body)

    def grant(
        self, tenant_id: str, user_id: str, *, expires_at: int | None = None, refresh_token: str | None = None
    ) -> dict[str, Any]:
        """The user signs in with SSO: store (or replace) their grant."""
        return self._admin(
            "PUT",
            f"/admin/users/{_segment(tenant_id)}/{_segment(user_id)}/grant",
            _without_none(expires_at=expires_at, refresh_token=refresh_token),
        )

    def revoke(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        return self._admin("DELETE", f"/admin/users/{_segment(tenant_id)}/{_segment(user_id)}/grant")

    def set_policy(
        self, tenant_id: str, *, deny: bool | None = None, allowed_audiences: list[str] | None = None
    ) -> dict[str, Any]:
        """Replace the tenant's policy (omitted parts reset: not denied, any audience)."""
        return self._admin(
            "PUT",
            f"/admin/tenants/{_segment(tenant_id)}/policy",
            _without_none(deny=deny, allowed_audiences=allowed_audiences),
        )

    def set_id_jag_policy(self, tenant_id: str, clients: dict[str, Any]) -> dict[str, Any]:
        """Replace the tenant's ID-JAG allow-list: `{client_id: {"audiences": {as_issuer: {"resources":
        [...], "scopes"?: [...], "client_id"?: id at that AS}}}}`. Until set, no ID-JAG is issued."""
        return self._admin("PUT", f"/admin/tenants/{_segment(tenant_id)}/id-jag-policy", {"clients": clients})

    def id_jag_policy(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's ID-JAG allow-list (`configured` is false while none was ever set)."""
        return self._admin("GET", f"/admin/tenants/{_segment(tenant_id)}/id-jag-policy")

    def allow_id_jag(
        self,
        tenant_id: str,
        client_id: str,
        audience: str,
        resources: list[str],
        *,
        scopes: list[str] | None = None,
        audience_client_id: str | None = None,
    ) -> dict[str, Any]:
        """Add (or replace) one entry of the tenant's allow-list: `client_id` may get ID-JAGs for
        `audience` (an MCP authorization server's issuer) and `resources`, keeping the other entries.
        `audience_client_id` is the client's id at that server when it differs from `client_id`."""
        clients = self.id_jag_policy(tenant_id)["clients"]
        entry = _without_none(resources=resources, scopes=scopes, client_id=audience_client_id)
        clients.setdefault(client_id, {}).setdefault("audiences", {})[audience] = entry
        return self.set_id_jag_policy(tenant_id, clients)

    def rotate_keys(self, alg: str | None = None) -> str:
        """Make a fresh signing key current; returns its kid."""
        return self._admin("POST", "/admin/keys/rotate", _without_none(alg=alg))["kid"]

    def set_faults(
        self,
        *,
        latency_ms: int | None = None,
        issue_token_status: int | None = None,
        jwks_unavailable: bool | None = None,
        issue_token_error: str | None = None,
    ) -> dict[str, Any]:
        """Replace the faults in force (omitted ones are off)."""
        return self._admin(
            "PUT",
            "/admin/faults",
            _without_none(
                latency_ms=latency_ms,
                issue_token_status=issue_token_status,
                jwks_unavailable=jwks_unavailable,
                issue_token_error=issue_token_error,
            ),
        )

    def clear_faults(self) -> dict[str, Any]:
        return self._admin("DELETE", "/admin/faults")

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        header: dict[str, Any] | None = None,
        ttl: int | None = None,
        hmac_key: str | None = None,
        raw_header: str | None = None,
        raw_claims: str | None = None,
    ) -> str:
        """A token with these claims and header fields over the defaults (None removes a member).

        `raw_header` / `raw_claims` are exact JSON texts encoded and signed as they are, in place
        of `header` / `claims`: for tokens with duplicate members and other malformed JSON objects.
        """
        body = _without_none(
            claims=claims,
            header=header,
            ttl=ttl,
            hmac_key=hmac_key,
            raw_header=raw_header,
            raw_claims=raw_claims,
        )
        return self._admin("POST", "/admin/mint", body)["token"]

    def create_client(
        self,
        *,
        redirect_uris: list[str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        client_name: str | None = None,
        grant_types: list[str] | None = None,
        token_endpoint_auth_method: str | None = None,
        scope: str | None = None,
    ) -> dict[str, Any]:
        """Pre-register an OAuth client; the answer carries its `client_secret` (shown only here)."""
        body = _without_none(
            redirect_uris=redirect_uris,
            client_id=client_id,
            client_secret=client_secret,
            client_name=client_name,
            grant_types=grant_types,
            token_endpoint_auth_method=token_endpoint_auth_method,
            scope=scope,
        )
        return self._admin("POST", "/admin/clients", body)

    def list_clients(self) -> list[dict[str, Any]]:
        """Every registered OAuth client (dynamic and pre-registered), without secrets."""
        return self._admin("GET", "/admin/clients")["clients"]

    def delete_client(self, client_id: str) -> dict[str, Any]:
        return self._admin("DELETE", f"/admin/clients/{_segment(client_id)}")

    def issue_token(
        self, tenant_id: str, user_id: str, audience: str, *, app_id: str = "", user_type: str = "account"
    ) -> dict[str, Any]:
        """Call the inner issue-token API, as a host would (needs `inner_secret`)."""
        if self._inner_headers is None:
            raise AdminClientError("issue_token needs the inner secret: AdminClient(..., inner_secret=...)")
        body = {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "app_id": app_id,
            "audience": audience,
            "user_type": user_type,
        }
        return self._call("POST", "/inner/api/mcp/issue-token", body, headers=self._inner_headers)

    def jwks(self) -> dict[str, Any]:
        return self._call("GET", "/.well-known/jwks.json")

    def discovery(self) -> dict[str, Any]:
        return self._call("GET", "/.well-known/openid-configuration")
