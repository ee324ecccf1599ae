"""The sign-in page a person sees at the authorization endpoint, and the error page."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from mcp.server.auth.provider import AuthorizeError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from fake_enterprise.directory import Directory
from fake_enterprise.errors import IssuerError
from fake_enterprise.oauth.access import AccessRefused
from fake_enterprise.oauth.provider import SIGN_IN_PATH, IssuerOAuthProvider, PendingSignIn
from fake_enterprise.validation import check_identifier

__all__ = ["Pages"]

_LISTED_USERS = 50
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # No scripts at all; the one form posts to ourselves. (No form-action: Chromium applies it to
    # the redirect that follows the post, which goes to the client.)
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}


class Pages:
    def __init__(self, provider: IssuerOAuthProvider, directory: Directory) -> None:
        self._provider = provider
        self._directory = directory
        self._templates = Environment(
            loader=PackageLoader("fake_enterprise.oauth", "templates"),
            autoescape=select_autoescape(default=True),
            auto_reload=False,
        )

    def _render(self, name: str, status: int, **context: Any) -> HTMLResponse:
        html = self._templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)

    def error(self, status: int, error: str, description: str) -> HTMLResponse:
        return self._render("error.html", status, error=error, description=description)

    def _expired(self) -> HTMLResponse:
        return self.error(400, "invalid_request", "This sign-in request has expired or was already answered.")

    async def _sign_in_page(
        self,
        pending: PendingSignIn,
        status: int = 200,
        message: str | None = None,
        typed: tuple[str, str] | None = None,
    ) -> HTMLResponse:
        users = await run_in_threadpool(self._directory.list_users, _LISTED_USERS)
        tenant_id, user_id = typed or pending.hint or ("", "")
        return self._render(
            "sign_in.html",
            status,
            action=SIGN_IN_PATH,
            request_id=pending.request_id,
            client_name=pending.client.display_name,
            client_id=pending.client.client_id,
            resource=self._provider.audience_of(pending.params.resource),
            scopes=" ".join(pending.params.scopes or ()),
            users=users,
            tenant_id=tenant_id,
            user_id=user_id,
            message=message,
        )

    async def show(self, request: Request) -> Response:
        pending = await run_in_threadpool(self._provider.pending, request.query_params.get("request", ""))
        if pending is None:
            return self._expired()
        return await self._sign_in_page(pending)

    async def submit(self, request: Request) -> Response:
        form = await request.form()
        request_id = form.get("request")
        pending = await run_in_threadpool(
            self._provider.take_pending, request_id if isinstance(request_id, str) else ""
        )
        if pending is None:
            return self._expired()
        if form.get("action") == "deny":
            return RedirectResponse(
                self._provider.redirect(
                    pending, error="access_denied", error_description="the user declined"
                ),
                status_code=303,
            )
        account = form.get("account")
        if isinstance(account, str) and "/" in account:
            tenant_id, _, user_id = account.partition("/")
        else:
            tenant_id, user_id = str(form.get("tenant_id") or ""), str(form.get("user_id") or "")
        try:
            check_identifier("tenant", tenant_id)
            check_identifier("user", user_id)
            location = await self._provider.complete_sign_in(pending, tenant_id, user_id)
        except IssuerError as exc:
            return await self._retry(pending, exc.message, (tenant_id, user_id))
        except AccessRefused as exc:
            if exc.kind == "unknown_user":
                return await self._retry(pending, exc.description, (tenant_id, user_id))
            location = self._provider.redirect(
                pending, error="access_denied", error_description=exc.description
            )
        except AuthorizeError as exc:
            location = self._provider.redirect(
                pending, error=exc.error, error_description=exc.error_description
            )
        # 303: the browser follows with a GET, whatever the form's method was.
        return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})

    async def _retry(self, pending: PendingSignIn, message: str, typed: tuple[str, str]) -> HTMLResponse:
        """The page again with the reason: a person can pick someone else (the request stays open)."""
        await run_in_threadpool(self._provider.put_back, pending)
        return await self._sign_in_page(pending, status=400, message=message, typed=typed)
