"""The console's pages and forms: sign in with the admin secret, look, act, sign out.

Every form posts to `/console/...` with the session's CSRF token; a post from another origin
(by `Origin`, else `Referer`) is refused too. Each action answers with a redirect to the page
(post/redirect/get) and a one-time flash message saying what happened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from fake_enterprise.console.overview import read_overview
from fake_enterprise.console.sessions import ConsoleSession, SessionSigner
from fake_enterprise.directory import TenantPolicy, User
from fake_enterprise.errors import IssuerError
from fake_enterprise.faults import Faults
from fake_enterprise.service import IssuerService
from fake_enterprise.settings import SIGNING_ALGORITHMS
from fake_enterprise.validation import check_identifier, check_url

__all__ = ["CONSOLE_PATH", "Console"]

CONSOLE_PATH = "/console"
SIGN_IN_PATH = f"{CONSOLE_PATH}/sign-in"
SESSION_COOKIE = "mcp_idfwd_console"
SIGN_IN_COOKIE = "mcp_idfwd_console_sign_in"
FLASH_COOKIE = "mcp_idfwd_console_flash"

_MAX_FORM_BYTES = 16 * 1024
_MAX_LATENCY_MS = 60_000
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Same-origin posts carry a Referer we can check; other sites learn nothing.
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

Handler = Callable[[Request], Awaitable[Response]]
Action = Callable[[dict[str, str]], str]


class FormRefused(Exception):
    """A console form that must not be acted on (403): bad CSRF token, other origin, bad body."""


def _when(value: float | None) -> str:
    if value is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def _read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form; each field once (a repeated field is a crafted request)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise FormRefused("the form must be sent as application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > _MAX_FORM_BYTES:
            raise FormRefused(f"the form exceeds {_MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise FormRefused("the form is not UTF-8") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise FormRefused(f"the field {name!r} is sent more than once")
        form[name] = value
    return form


def _optional_text(form: dict[str, str], name: str, max_length: int) -> str | None:
    value = form.get(name, "").strip()
    if len(value) > max_length:
        raise IssuerError(400, "invalid_request", f"{name} must be at most {max_length} characters")
    return value or None


def _optional_int(form: dict[str, str], name: str, minimum: int, maximum: int) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or not minimum <= int(text) <= maximum:
        raise IssuerError(
            400, "invalid_request", f"{name} must be a whole number from {minimum} to {maximum}"
        )
    return int(text)


class Console:
    """The console's routes over one issuer service."""

    def __init__(self, service: IssuerService) -> None:
        settings = service.settings
        self._service = service
        self._signer = SessionSigner(
            settings.admin_secret, ttl=settings.console_session_ttl, clock=settings.clock
        )
        self._secure = settings.issuer_url.startswith("https://")
        self._issuer_origin = _origin(settings.issuer_url)
        self._templates = Environment(
            loader=PackageLoader("fake_enterprise.console", "templates"),
            autoescape=select_autoescape(default=True),
            auto_reload=False,
        )
        self._templates.filters["when"] = _when
        self._templates.filters["pretty"] = _pretty

    def routes(self) -> list[Route]:
        actions: dict[str, Action] = {
            "users": self._create_user,
            "grants": self._grant_or_revoke,
            "policies": self._set_policy,
            "keys/rotate": self._rotate_keys,
            "faults": self._set_or_clear_faults,
        }
        return [
            Route(CONSOLE_PATH, self.page, methods=["GET"]),
            Route(SIGN_IN_PATH, self.sign_in_form, methods=["GET"]),
            Route(SIGN_IN_PATH, self.sign_in, methods=["POST"]),
            Route(f"{CONSOLE_PATH}/sign-out", self.sign_out, methods=["POST"]),
            *(
                Route(f"{CONSOLE_PATH}/{path}", partial(self._act, action), methods=["POST"])
                for path, action in actions.items()
            ),
        ]

    # --- responses ------------------------------------------------------------------------------

    def _render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self._templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=CONSOLE_PATH,
            secure=self._secure,
            httponly=True,
            samesite="strict",
        )

    def _clear_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path=CONSOLE_PATH, secure=self._secure, httponly=True, samesite="strict")

    def _redirect(self, path: str) -> RedirectResponse:
        # 303: the browser follows with a GET, whatever the form's method was.
        return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})

    def _refused(self, reason: str) -> HTMLResponse:
        return self._render("refused.html", 403, reason=reason)

    # --- checks ---------------------------------------------------------------------------------

    def _session(self, request: Request) -> ConsoleSession | None:
        return self._signer.session(request.cookies.get(SESSION_COOKIE))

    def _check_origin(self, request: Request) -> None:
        """A post from a page of another origin is refused; a client that sends neither header passes."""
        origin = request.headers.get("origin")
        if origin is None:
            referer = request.headers.get("referer")
            if referer is None:
                return
            origin = _origin(referer)
        own = {self._issuer_origin}
        host = request.headers.get("host")
        if host:
            own.add(f"{request.url.scheme}://{host}".lower())
        if origin.lower() not in own:
            raise FormRefused("the form was posted from another origin")

    # --- sign in and out ------------------------------------------------------------------------

    async def sign_in_form(self, request: Request, status: int = 200, message: str | None = None) -> Response:
        if status == 200 and self._session(request) is not None:
            return self._redirect(CONSOLE_PATH)
        nonce, csrf_token = self._signer.new_sign_in_nonce()
        response = self._render(
            "sign_in.html", status, action=SIGN_IN_PATH, csrf_token=csrf_token, message=message
        )
        self._set_cookie(response, SIGN_IN_COOKIE, nonce, self._signer.ttl)
        return response

    async def sign_in(self, request: Request) -> Response:
        try:
            self._check_origin(request)
            form = await _read_form(request)
            nonce = request.cookies.get(SIGN_IN_COOKIE)
            if not self._signer.sign_in_csrf_ok(nonce, form.get("csrf_token")):
                raise FormRefused("the sign-in form's CSRF token is missing or wrong; reload the page")
        except FormRefused as exc:
            return self._refused(str(exc))
        if not self._signer.admin_secret_matches(form.get("admin_secret", "")):
            return await self.sign_in_form(request, status=401, message="Wrong admin secret.")
        cookie, _ = self._signer.new_session()
        response = self._redirect(CONSOLE_PATH)
        self._set_cookie(response, SESSION_COOKIE, cookie, self._signer.ttl)
        self._clear_cookie(response, SIGN_IN_COOKIE)
        return response

    async def sign_out(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._redirect(SIGN_IN_PATH)
        try:
            await self._checked_form(request, session)
        except FormRefused as exc:
            return self._refused(str(exc))
        response = self._redirect(SIGN_IN_PATH)
        self._clear_cookie(response, SESSION_COOKIE)
        return response

    async def _checked_form(self, request: Request, session: ConsoleSession) -> dict[str, str]:
        self._check_origin(request)
        form = await _read_form(request)
        if not self._signer.csrf_ok(session, form.get("csrf_token")):
            raise FormRefused("the form's CSRF token is missing or wrong; reload the console")
        return form

    # --- the page -------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._redirect(SIGN_IN_PATH)
        overview = await run_in_threadpool(read_overview, self._service)
        flash = self._signer.read_flash(request.cookies.get(FLASH_COOKIE))
        response = self._render(
            "console.html",
            overview=overview,
            csrf_token=session.csrf_token,
            flash=flash,
            algorithms=SIGNING_ALGORITHMS,
            issuer_url=self._service.settings.issuer_url,
            session_ends=session.started_at + self._signer.ttl,
        )
        if FLASH_COOKIE in request.cookies:
            self._clear_cookie(response, FLASH_COOKIE)
        return response

    # --- actions --------------------------------------------------------------------------------

    async def _act(self, action: Action, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._redirect(SIGN_IN_PATH)
        try:
            form = await self._checked_form(request, session)
        except FormRefused as exc:
            return self._refused(str(exc))
        try:
            flash = self._signer.flash("ok", await run_in_threadpool(action, form))
        except IssuerError as exc:
            flash = self._signer.flash("error", exc.message)
        response = self._redirect(CONSOLE_PATH)
        self._set_cookie(response, FLASH_COOKIE, flash, 60)
        return response

    def _create_user(self, form: dict[str, str]) -> str:
        user = User(
            tenant_id=check_identifier("tenant_id", form.get("tenant_id", "").strip()),
            user_id=check_identifier("user_id", form.get("user_id", "").strip()),
            email=_optional_text(form, "email", 320),
            name=_optional_text(form, "name", 256),
        )
        created = self._service.create_user(user)
        return f"Created user {created['tenant_id']}/{created['user_id']} (sub {created['sub']})."

    def _grant_or_revoke(self, form: dict[str, str]) -> str:
        tenant_id = check_identifier("tenant_id", form.get("tenant_id", ""))
        user_id = check_identifier("user_id", form.get("user_id", ""))
        action = form.get("action")
        if action == "grant":
            self._service.put_grant(tenant_id, user_id, refresh_token=None, expires_at=None)
            return f"Granted: {tenant_id}/{user_id} has signed in with SSO."
        if action == "revoke":
            revoked = self._service.revoke_grant(tenant_id, user_id)["revoked"]
            if not revoked:
                return f"{tenant_id}/{user_id} had no active grant to revoke."
            return f"Revoked the SSO grant of {tenant_id}/{user_id}."
        raise IssuerError(400, "invalid_request", "action must be grant or revoke")

    def _set_policy(self, form: dict[str, str]) -> str:
        tenant_id = check_identifier("tenant_id", form.get("tenant_id", "").strip())
        lines = [line.strip() for line in form.get("allowed_audiences", "").splitlines() if line.strip()]
        audiences = tuple(check_url("allowed audience", line) for line in lines) or None
        policy = TenantPolicy(deny=form.get("deny") == "on", allowed_audiences=audiences)
        self._service.set_policy(tenant_id, policy)
        audience_text = "any audience" if audiences is None else f"{len(audiences)} audience(s)"
        return f"Policy of {tenant_id}: {'denied' if policy.deny else 'allowed'}, {audience_text}."

    def _rotate_keys(self, form: dict[str, str]) -> str:
        alg = form.get("alg") or None
        if alg is not None and alg not in SIGNING_ALGORITHMS:
            raise IssuerError(400, "invalid_request", f"alg must be one of {', '.join(SIGNING_ALGORITHMS)}")
        key = self._service.rotate_keys(alg)
        return f"Rotated: the new signing key is {key['kid']} ({key['alg']})."

    def _set_or_clear_faults(self, form: dict[str, str]) -> str:
        if form.get("action") == "clear":
            self._service.faults.clear()
            return "Faults cleared."
        faults = Faults(
            latency_ms=_optional_int(form, "latency_ms", 0, _MAX_LATENCY_MS) or 0,
            issue_token_status=_optional_int(form, "issue_token_status", 400, 599),
            jwks_unavailable=form.get("jwks_unavailable") == "on",
        )
        self._service.faults.set(faults)
        return "Faults set."
