"""Two issuer apps on one database, as `--workers 2` runs them: a sign-in begun on one completes on the other.

Each app is served on its own port so the test decides which "worker" gets which request; both
carry the same issuer URL, as workers sharing one port do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from oauth_support import ADMIN_SECRET, SECRET, Pkce, query_of, register

from fake_enterprise import AdminClient, IssuerSettings, create_app
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread

RESOURCE = "http://127.0.0.1:9/mcp"


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[ServedApp, ServedApp]]:
    first_sock, second_sock = bind_loopback(), bind_loopback()
    settings = IssuerSettings(
        issuer_url=socket_url(first_sock),
        secret=SECRET,
        admin_secret=ADMIN_SECRET,
        db_path=str(tmp_path / "i.db"),
    )
    first = start_in_thread(create_app(settings), first_sock)
    try:
        second = start_in_thread(create_app(settings), second_sock)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


def test_a_sign_in_page_shown_by_one_worker_is_answered_by_the_other_once(
    two_workers: tuple[ServedApp, ServedApp],
) -> None:
    first, second = two_workers
    with AdminClient(first.url, ADMIN_SECRET) as admin:
        admin.create_user("acme", "bob")
    with httpx.Client(timeout=10.0) as http:
        client = register(http, first.url, client_name="two workers")
        pkce = Pkce.new()
        started = client.authorize(pkce, resource=RESOURCE, state="st")
        assert started.status_code == 302
        request_id = query_of(started.headers["location"])["request"]
        page = http.get(f"{second.url}/oauth/sign-in", params={"request": request_id})
        assert page.status_code == 200 and "two workers" in page.text
        form = {"request": request_id, "account": "acme/bob"}
        done = http.post(f"{second.url}/oauth/sign-in", data=form)
        assert done.status_code == 303
        answer = query_of(done.headers["location"])
        assert answer["state"] == "st" and answer["iss"] == first.url
        assert http.post(f"{first.url}/oauth/sign-in", data=form).status_code == 400, "answered once"
        client.issuer_url = second.url
        tokens = client.exchange_code(answer["code"], pkce, resource=RESOURCE)
        assert tokens.status_code == 200, tokens.text
