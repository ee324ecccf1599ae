"""The OAuth endpoints: the SDK's handlers where they fit, wrapped or completed where they do not.

- authorize: the SDK's handler, given the OIDC `nonce`/`login_hint` it drops, with `iss` added
  to its error redirects (RFC 9207) and its JSON errors shown as a page to the person.
- token: `authorization_code` and `refresh_token` go to the SDK's handler; RFC 8693 token
  exchange, which its closed set of grant types cannot take, is handled here. Unknown grant
  types get `unsupported_grant_type` (the SDK answers `invalid_request`), a `redirect_uri`
  that differs from the authorization request's gets `invalid_grant` (RFC 6749 §5.2; the SDK
  says `invalid_request`), and `client_secret_basic` works without a `client_id` in the body.
- revocation (RFC 7009) and introspection (RFC 7662) are here: the SDK's revocation handler
  refuses public clients that send no `client_secret` field and has no introspection.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio
from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fake_enterprise.authentication import basic_client_id
from fake_enterprise.oauth.access import forced_oauth_error
from fake_enterprise.oauth.clients import RegisteredClient
from fake_enterprise.oauth.errors import NO_STORE, OAuthError, oauth_error_response
from fake_enterprise.oauth.exchange import TOKEN_EXCHANGE_GRANT, TokenExchange
from fake_enterprise.oauth.pages import Pages
from fake_enterprise.oauth.provider import AuthorizationExtras, IssuerOAuthProvider, authorization_extras

__all__ = ["OAuthEndpoints"]

_SDK_GRANTS = ("authorization_code", "refresh_token")
_MAX_FORM_BYTES = 64 * 1024


def _replayed(request: Request, body: bytes) -> Request:
    """A copy of `request` whose body is `body` (for handing an amended form to the SDK)."""
    headers = [(name, value) for name, value in request.scope["headers"] if name != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({**request.scope, "headers": headers}, receive)


class OAuthEndpoints:
    def __init__(self, provider: IssuerOAuthProvider, exchange: TokenExchange, pages: Pages) -> None:
        self._provider = provider
        self._exchange = exchange
        self._pages = pages
        self._authenticator = ClientAuthenticator(provider)
        self._sdk_authorize = AuthorizationHandler(provider)
        self._sdk_token = TokenHandler(provider, self._authenticator)

    # --- shared -----------------------------------------------------------------------------------

    async def _form(self, request: Request) -> tuple[Request, FormData]:
        """The request (amended with the Basic client_id when the body lacks it) and its form."""
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            raise OAuthError("invalid_request", f"the body exceeds {_MAX_FORM_BYTES} bytes", status=413)
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise OAuthError("invalid_request", "the body is not UTF-8") from None
        basic_id = basic_client_id(request.headers.get("authorization", ""))
        names = [name for name, _ in pairs]
        if basic_id is not None and "client_id" not in names:
            pairs.append(("client_id", basic_id))
            request = _replayed(request, urlencode(pairs).encode())
        elif basic_id is not None and dict(pairs).get("client_id") != basic_id:
            raise OAuthError(
                "invalid_client", "client_id in the body differs from the Basic credentials", 401
            )
        for name in ("grant_type", "client_id", "code", "refresh_token", "token"):
            if names.count(name) > 1:
                raise OAuthError("invalid_request", f"{name} may be given only once")
        return request, FormData(pairs)

    async def _client(self, request: Request) -> RegisteredClient:
        try:
            client = await self._authenticator.authenticate_request(request)
        except AuthenticationError as exc:
            raise OAuthError("invalid_client", exc.message, 401) from None
        assert isinstance(client, RegisteredClient)  # the provider returns nothing else
        return client

    # --- authorization endpoint -------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        params = request.query_params if request.method == "GET" else await request.form()
        nonce, login_hint = params.get("nonce"), params.get("login_hint")
        extras = AuthorizationExtras(
            nonce=nonce if isinstance(nonce, str) and nonce else None,
            login_hint=login_hint if isinstance(login_hint, str) and login_hint else None,
        )
        context = authorization_extras.set(extras)
        try:
            response = await self._sdk_authorize.handle(request)
        finally:
            authorization_extras.reset(context)
        return self._finish_authorize(response)

    def _finish_authorize(self, response: Response) -> Response:
        location = response.headers.get("location")
        if response.status_code in (302, 303) and location:
            parts = urlsplit(location)
            query = parse_qsl(parts.query, keep_blank_values=True)
            names = {name for name, _ in query}
            if "error" in names and "iss" not in names:
                query.append(("iss", self._provider.settings.issuer_url))
                response.headers["location"] = parts._replace(query=urlencode(query)).geturl()
            return response
        if response.status_code >= 400:
            try:
                error = json.loads(bytes(response.body))
            except ValueError:
                error = {}
            return self._pages.error(
                response.status_code,
                str(error.get("error", "invalid_request")),
                str(error.get("error_description") or "The authorization request is invalid."),
            )
        return response

    # --- token endpoint ---------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        try:
            return await self._token(request)
        except OAuthError as exc:
            return oauth_error_response(exc)

    async def _token(self, request: Request) -> Response:
        faults = self._provider.access.faults.current
        if faults.latency_ms:
            await anyio.sleep(faults.latency_ms / 1000)
        if faults.issue_token_status is not None:
            raise OAuthError(
                forced_oauth_error(faults),
                f"the token endpoint answers {faults.issue_token_status} (injected fault)",
                faults.issue_token_status,
            )
        request, form = await self._form(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type == TOKEN_EXCHANGE_GRANT:
            return await self._token_exchange(request, form)
        if grant_type not in _SDK_GRANTS:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!s:.64} is not supported")
        if grant_type == "authorization_code":
            await self._check_code_redirect(form)
        return await self._sdk_token.handle(request)

    async def _check_code_redirect(self, form: FormData) -> None:
        code, client_id = form.get("code"), form.get("client_id")
        if not isinstance(code, str) or not isinstance(client_id, str):
            return  # the SDK's handler reports what is missing
        record = await run_in_threadpool(self._provider.grants.code, code)
        if record is None or record.family.client_id != client_id or not record.redirect_uri_explicit:
            return
        if form.get("redirect_uri") != record.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")

    async def _token_exchange(self, request: Request, form: FormData) -> Response:
        client = await self._client(request)
        if TOKEN_EXCHANGE_GRANT not in client.grant_types:
            raise OAuthError("unauthorized_client", "this client is not registered for token exchange")
        exchange_request = self._exchange.parse(form, client)
        answer = await run_in_threadpool(self._exchange.exchange, exchange_request)
        return JSONResponse(answer, headers=NO_STORE)

    # --- revocation and introspection -------------------------------------------------------------

    async def revoke(self, request: Request) -> Response:
        try:
            request, form = await self._form(request)
            client = await self._client(request)
            token = form.get("token")
            if not isinstance(token, str) or not token:
                raise OAuthError("invalid_request", "token is required")
        except OAuthError as exc:
            return oauth_error_response(exc)
        await run_in_threadpool(self._revoke, client, token)
        # RFC 7009 §2.2: 200 whether or not the token was valid, so nobody can probe for tokens.
        return Response(status_code=200, headers=NO_STORE)

    def _revoke(self, client: RegisteredClient, token: str) -> None:
        provider = self._provider
        access_token = provider.read_access_token(token)
        if access_token is not None:
            if access_token.client_id == client.client_id:
                provider.revoke_now(access_token)
            return
        record = provider.grants.refresh_token(token)
        if record is not None and record.family.client_id == client.client_id:
            provider.grants.revoke_family(record.family.family_id)

    async def introspect(self, request: Request) -> Response:
        try:
            request, form = await self._form(request)
            client = await self._client(request)
            if not client.client_secret:
                raise OAuthError("invalid_client", "introspection needs a confidential client", 401)
            token = form.get("token")
            if not isinstance(token, str) or not token:
                raise OAuthError("invalid_request", "token is required")
        except OAuthError as exc:
            return oauth_error_response(exc)
        answer = await run_in_threadpool(self._introspect, client, token)
        return JSONResponse(answer, headers=NO_STORE)

    def _introspect(self, client: RegisteredClient, token: str) -> dict[str, Any]:
        provider = self._provider
        access_token = provider.read_access_token(token)
        if access_token is not None:
            claims = access_token.claims or {}
            answer = {"active": True, "token_type": "Bearer", "username": claims.get("preferred_username")}
            for name in ("scope", "client_id", "exp", "iat", "nbf", "sub", "aud", "iss", "jti", "tenant_id"):
                if name in claims:
                    answer[name] = claims[name]
            return answer
        record = provider.grants.refresh_token(token)
        now = provider.settings.clock()
        if (
            record is None
            or record.used
            or record.family.revoked
            or record.expires_at <= now
            or record.family.client_id != client.client_id
        ):
            return {"active": False}
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": record.family.client_id,
            "scope": " ".join(record.family.scopes),
            "exp": record.expires_at,
            "iss": provider.settings.issuer_url,
            "tenant_id": record.family.tenant_id,
            "username": record.family.user_id,
        }
