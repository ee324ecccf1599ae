"""The issuer's HTTP surface: discovery, JWKS, the inner issue-token API, the admin API, the
OAuth authorization server's routes (built in `fake_enterprise.oauth`) and the web console
(`fake_enterprise.console`).

Which secret opens which route is `authentication.SecretGate`'s job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fake_enterprise.authentication import SecretGate
from fake_enterprise.console import Console
from fake_enterprise.directory import TenantPolicy, User
from fake_enterprise.errors import IssuerError
from fake_enterprise.faults import Faults
from fake_enterprise.oauth.errors import OAuthError, oauth_error_response
from fake_enterprise.oauth.metadata import TOKEN_PATH
from fake_enterprise.service import ISSUE_TOKEN_PATH, IssuerService
from fake_enterprise.settings import SIGNING_ALGORITHMS, TOKEN_PROFILES, IssuerSettings
from fake_enterprise.storage import DatabaseLock
from fake_enterprise.token_events import TokenEventObserver
from fake_enterprise.validation import Body, check_identifier, read_json_object

__all__ = ["create_app"]

_USER_TYPES = ("account", "end_user")
_TEN_YEARS = 10 * 365 * 86_400
_MAX_LATENCY_MS = 60_000
_MAX_RAW_JSON = 16 * 1024

_log = logging.getLogger(__name__)

# Algorithms whose issue-token runs inline on the event loop in signing_mode "auto"; the others
# hop to a worker thread. Chosen by bench/issuer_throughput.py (docs/issuer-performance.md), the
# modes side by side in one run, on a shared 2-core machine. ES256/EdDSA: inline gave 1.4-3.1x
# the thread pool's req/s at 1-64 clients and a lower p99 in every run (ES256, 64 clients: 31 vs
# 86 ms); their signature costs less than the hop to a thread and back. RS256: inline gave
# 1.0-1.8x the req/s (mostly 1.1-1.3x) but a worse p99 at 64 clients in 3 runs of 4 (123 vs 66,
# 150 vs 122, 235 vs 136 ms; once better, 54 vs 102): cryptography releases the GIL while it signs
# RSA, so in a thread the 0.3-1.4 ms signature overlaps the loop's work instead of stalling every
# other connection. RS256 stays in the thread pool.
_INLINE_ALGS = frozenset({"ES256", "EdDSA", "Ed25519"})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


class _Routes:
    """Request handlers bound to one `IssuerService`."""

    def __init__(self, service: IssuerService) -> None:
        self._service = service
        self._settings = service.settings
        self._gate = SecretGate(service.settings.secret, service.settings.admin_secret)

    async def _body(self, request: Request, allowed: tuple[str, ...], *, allow_empty: bool = False) -> Body:
        data = await read_json_object(request, limit=self._settings.max_body_bytes, allow_empty=allow_empty)
        return Body(data, allowed=allowed)

    @staticmethod
    def _path_ids(request: Request, *names: str) -> list[str]:
        return [check_identifier(name, request.path_params[name]) for name in names]

    async def discovery(self, request: Request) -> Response:
        return _json(200, self._service.discovery(), {"Cache-Control": "public, max-age=3600"})

    async def jwks(self, request: Request) -> Response:
        if self._service.faults.current.jwks_unavailable:
            raise IssuerError(503, "jwks_unavailable", "the JWKS is unavailable (injected fault)")
        # Inline: the public keys are in memory; only a rotation elsewhere costs a database read.
        keys = self._service.jwks()
        return _json(200, keys, {"Cache-Control": f"public, max-age={self._settings.jwks_max_age}"})

    async def issue_token(self, request: Request) -> Response:
        self._gate.inner(request)
        faults = self._service.faults.current
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.issue_token_status is not None:
            raise IssuerError(
                faults.issue_token_status,
                faults.forced_error(),
                f"issue-token answers {faults.issue_token_status} (injected fault)",
            )
        body = await self._body(request, ("tenant_id", "user_id", "app_id", "audience", "user_type"))
        tenant_id = body.identifier("tenant_id")
        user_id = body.identifier("user_id")
        app_id = body.string("app_id", max_length=256)
        if app_id is None:
            raise IssuerError(400, "invalid_request", "missing field 'app_id' (it may be empty)")
        audience = body.url("audience")
        user_type = body.choice("user_type", _USER_TYPES, default="account")
        issue = partial(
            self._service.issue_token,
            tenant_id=tenant_id,
            user_id=user_id,
            app_id=app_id,
            audience=audience,
            user_type=user_type,
        )
        # The key ring may rotate to another alg at any time: decided per request, on its current key.
        result = issue() if self._signs_inline() else await run_in_threadpool(issue)
        return _json(200, result)

    def _signs_inline(self) -> bool:
        mode = self._settings.signing_mode
        if mode == "auto":
            return self._service.keyring.current.alg in _INLINE_ALGS
        return mode == "inline"

    async def create_user(self, request: Request) -> Response:
        self._gate.admin(request)
        body = await self._body(request, ("tenant_id", "user_id", "email", "name", "token_profile"))
        user = User(
            tenant_id=body.identifier("tenant_id"),
            user_id=body.identifier("user_id"),
            email=body.string("email", max_length=320),
            name=body.string("name", max_length=256),
            token_profile=body.choice("token_profile", TOKEN_PROFILES),
        )
        return _json(201, await run_in_threadpool(self._service.create_user, user))

    async def put_grant(self, request: Request) -> Response:
        self._gate.admin(request)
        tenant_id, user_id = self._path_ids(request, "tenant_id", "user_id")
        body = await self._body(request, ("expires_at", "refresh_token"), allow_empty=True)
        expires_at = body.integer("expires_at", minimum=0, maximum=2**53)
        refresh_token = body.string("refresh_token", max_length=4096)
        result = await run_in_threadpool(
            self._service.put_grant, tenant_id, user_id, refresh_token=refresh_token, expires_at=expires_at
        )
        return _json(200, result)

    async def revoke_grant(self, request: Request) -> Response:
        self._gate.admin(request)
        tenant_id, user_id = self._path_ids(request, "tenant_id", "user_id")
        return _json(200, await run_in_threadpool(self._service.revoke_grant, tenant_id, user_id))

    async def set_policy(self, request: Request) -> Response:
        self._gate.admin(request)
        (tenant_id,) = self._path_ids(request, "tenant_id")
        body = await self._body(request, ("deny", "allowed_audiences"), allow_empty=True)
        policy = TenantPolicy(
            deny=bool(body.boolean("deny")), allowed_audiences=body.url_list("allowed_audiences")
        )
        return _json(200, await run_in_threadpool(self._service.set_policy, tenant_id, policy))

    async def set_id_jag_policy(self, request: Request) -> Response:
        self._gate.admin(request)
        (tenant_id,) = self._path_ids(request, "tenant_id")
        data = await read_json_object(request, limit=self._settings.max_body_bytes)
        result = await run_in_threadpool(self._service.oauth.set_id_jag_policy, tenant_id, data)
        return _json(200, result)

    async def id_jag_policy(self, request: Request) -> Response:
        self._gate.admin(request)
        (tenant_id,) = self._path_ids(request, "tenant_id")
        return _json(200, await run_in_threadpool(self._service.oauth.id_jag_policy, tenant_id))

    async def rotate_keys(self, request: Request) -> Response:
        self._gate.admin(request)
        body = await self._body(request, ("alg",), allow_empty=True)
        alg = body.choice("alg", SIGNING_ALGORITHMS)
        return _json(200, await run_in_threadpool(self._service.rotate_keys, alg))

    async def set_faults(self, request: Request) -> Response:
        self._gate.admin(request)
        fields = ("latency_ms", "issue_token_status", "issue_token_error", "jwks_unavailable")
        body = await self._body(request, fields, allow_empty=True)
        faults = Faults(
            latency_ms=body.integer("latency_ms", minimum=0, maximum=_MAX_LATENCY_MS) or 0,
            issue_token_status=body.integer("issue_token_status", minimum=400, maximum=599),
            issue_token_error=body.string("issue_token_error", max_length=64),
            jwks_unavailable=bool(body.boolean("jwks_unavailable")),
        )
        return _json(200, self._service.faults.set(faults).as_json())

    async def clear_faults(self, request: Request) -> Response:
        self._gate.admin(request)
        return _json(200, self._service.faults.clear().as_json())

    async def create_client(self, request: Request) -> Response:
        self._gate.admin(request)
        data = await read_json_object(request, limit=self._settings.max_body_bytes)
        return _json(201, await run_in_threadpool(self._service.oauth.create_client, data))

    async def list_clients(self, request: Request) -> Response:
        self._gate.admin(request)
        return _json(200, await run_in_threadpool(self._service.oauth.list_clients))

    async def delete_client(self, request: Request) -> Response:
        self._gate.admin(request)
        (client_id,) = self._path_ids(request, "client_id")
        return _json(200, await run_in_threadpool(self._service.oauth.delete_client, client_id))

    async def mint(self, request: Request) -> Response:
        self._gate.admin(request)
        fields = ("claims", "header", "ttl", "hmac_key", "raw_header", "raw_claims")
        body = await self._body(request, fields)
        raw_header = body.string("raw_header", max_length=_MAX_RAW_JSON)
        raw_claims = body.string("raw_claims", max_length=_MAX_RAW_JSON)
        claims = body.object("claims", required=raw_claims is None)
        header = body.object("header")
        ttl = body.integer("ttl", minimum=-_TEN_YEARS, maximum=_TEN_YEARS)
        hmac_key = body.string("hmac_key", max_length=16_384)
        if raw_claims is not None and (claims is not None or ttl is not None):
            raise IssuerError(
                400, "invalid_request", "raw_claims replaces claims and ttl; send one or the other"
            )
        if raw_header is not None and header is not None:
            raise IssuerError(400, "invalid_request", "raw_header replaces header; send one or the other")
        result = await run_in_threadpool(
            partial(
                self._service.mint,
                claims,
                header=header,
                ttl=ttl,
                hmac_key=hmac_key,
                raw_header=raw_header,
                raw_claims=raw_claims,
            )
        )
        return _json(200, result)


async def _issuer_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IssuerError)
    return _json(exc.status, exc.as_json(), exc.headers)


async def _oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return oauth_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    return _json(exc.status_code, {"error": code, "message": str(exc.detail)}, dict(exc.headers or {}))


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client hung up mid-request (a timeout, a truncated body): routine, nobody reads an answer.
    _log.debug("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=400)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Last line of defence: the client learns nothing, the log gets the exception type only.
    _log.error("unhandled %s in %s %s", type(exc).__name__, request.method, request.url.path)
    return _json(500, {"error": "server_error", "message": "internal error"})


def create_app(settings: IssuerSettings) -> Starlette:
    """The issuer as an ASGI app. Storage and keys are opened now, so errors surface before serving.

    With `settings.exclusive_db` the database's `DatabaseLock` is taken now and held until the
    app shuts down (or the process ends), as `app.state.db_lock`; a second holder gets
    `DatabaseLockedError`.
    """
    # Taken before the database or its key file is touched: a refused second issuer changes nothing.
    lock = DatabaseLock.acquire(settings.db_path) if settings.exclusive_db else None
    try:
        service = IssuerService(settings)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    routes = _Routes(service)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()
            if lock is not None:
                lock.release()

    app = Starlette(
        routes=[
            Route("/.well-known/openid-configuration", routes.discovery, methods=["GET"]),
            Route("/.well-known/jwks.json", routes.jwks, methods=["GET"]),
            Route(ISSUE_TOKEN_PATH, routes.issue_token, methods=["POST"]),
            Route("/admin/users", routes.create_user, methods=["POST"]),
            Route("/admin/users/{tenant_id}/{user_id}/grant", routes.put_grant, methods=["PUT"]),
            Route("/admin/users/{tenant_id}/{user_id}/grant", routes.revoke_grant, methods=["DELETE"]),
            Route("/admin/tenants/{tenant_id}/policy", routes.set_policy, methods=["PUT"]),
            Route("/admin/tenants/{tenant_id}/id-jag-policy", routes.set_id_jag_policy, methods=["PUT"]),
            Route("/admin/tenants/{tenant_id}/id-jag-policy", routes.id_jag_policy, methods=["GET"]),
            Route("/admin/keys/rotate", routes.rotate_keys, methods=["POST"]),
            Route("/admin/faults", routes.set_faults, methods=["PUT"]),
            Route("/admin/faults", routes.clear_faults, methods=["DELETE"]),
            Route("/admin/mint", routes.mint, methods=["POST"]),
            Route("/admin/clients", routes.create_client, methods=["POST"]),
            Route("/admin/clients", routes.list_clients, methods=["GET"]),
            Route("/admin/clients/{client_id}", routes.delete_client, methods=["DELETE"]),
            *service.oauth.routes(),
            *Console(service).routes(),
        ],
        # Every token handed to a user, and every refusal, goes through one of these two paths.
        middleware=[
            Middleware(
                TokenEventObserver,
                events=service.events,
                paths={ISSUE_TOKEN_PATH: "issue-token", TOKEN_PATH: "oauth-token"},
            )
        ],
        exception_handlers={
            IssuerError: _issuer_error,
            OAuthError: _oauth_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
    app.state.issuer = service
    app.state.db_lock = lock
    return app
