"""Token events: every token issued and every refusal, with who, what and why, kept bounded, never a token."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import httpx
import jwt
import pytest
from console_support import AUDIENCE, SECRET, ConsoleBrowser, FakeClock, RunningIssuer, oauth_sign_in

from fake_enterprise.storage import Database
from fake_enterprise.token_events import TokenEvent, TokenEvents, decode_unverified

ISSUE_PATH = "/inner/api/mcp/issue-token"


def _events_for(issuer: RunningIssuer, tenant: str) -> list[TokenEvent]:
    app_events: TokenEvents = issuer.served.server.config.app.state.issuer.events  # type: ignore[attr-defined]
    return [event for event in app_events.recent(500) if event.tenant_id == tenant]


def _issue(
    http: httpx.Client, issuer: RunningIssuer, tenant: str, user: str, **headers: str
) -> httpx.Response:
    return http.post(
        f"{issuer.url}{ISSUE_PATH}",
        json={"tenant_id": tenant, "user_id": user, "app_id": "console-test-app", "audience": AUDIENCE},
        headers={"Enterprise-Api-Secret-Key": SECRET, **headers},
    )


def test_an_issued_token_is_recorded_decoded(module_issuer: RunningIssuer, tenant: str) -> None:
    with module_issuer.admin() as admin, httpx.Client(timeout=10.0) as http:
        subject = admin.create_user(tenant, "alice")["sub"]
        admin.grant(tenant, "alice")
        token = _issue(http, module_issuer, tenant, "alice").json()["token"]
    header, claims = jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
    [event] = _events_for(module_issuer, tenant)
    assert (event.outcome, event.status, event.endpoint, event.reason) == ("issued", 200, "issue-token", None)
    assert (event.user_id, event.subject, event.audience) == ("alice", subject, AUDIENCE)
    assert (event.alg, event.kid, event.jti) == (header["alg"], header["kid"], claims["jti"])
    assert event.client_id == "console-test-app"
    assert event.header == header and event.claims == claims


@pytest.mark.parametrize(
    ("setup", "user", "headers", "status", "reason"),
    [
        ([], "nobody", {}, 404, "unknown_user: no user 'nobody' in tenant"),
        (["create"], "alice", {}, 428, "no_refresh_token: user 'alice' has never signed in with SSO"),
        (
            ["create", "grant", "revoke"],
            "alice",
            {},
            401,
            "refresh_rejected: the SSO grant of user 'alice' was revoked",
        ),
        (["create", "grant", "deny"], "alice", {}, 403, "policy_denied: tenant"),
        (["create", "grant"], "alice", {"Enterprise-Api-Secret-Key": "wrong"}, 401, "invalid_client: wrong"),
    ],
    ids=["unknown-user", "no-grant", "revoked-grant", "policy-denied", "bad-secret"],
)
def test_a_refusal_is_recorded_with_its_reason(
    module_issuer: RunningIssuer,
    tenant: str,
    setup: list[str],
    user: str,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    with module_issuer.admin() as admin, httpx.Client(timeout=10.0) as http:
        if "create" in setup:
            admin.create_user(tenant, "alice")
        if "grant" in setup:
            admin.grant(tenant, "alice")
        if "revoke" in setup:
            admin.revoke(tenant, "alice")
        if "deny" in setup:
            admin.set_policy(tenant, deny=True)
        answer = _issue(http, module_issuer, tenant, user, **headers)
    assert answer.status_code == status
    [event] = _events_for(module_issuer, tenant)
    assert (event.outcome, event.status, event.endpoint) == ("refused", status, "issue-token")
    assert event.reason is not None and event.reason.startswith(reason)
    assert (event.user_id, event.audience, event.client_id) == (user, AUDIENCE, "console-test-app")
    assert event.header is None and event.claims is None and event.jti is None
    assert "wrong" not in (event.tenant_id or "") + (event.user_id or "")  # the secret is not kept anywhere


def test_the_oauth_token_endpoint_is_recorded(module_issuer: RunningIssuer, tenant: str) -> None:
    with module_issuer.admin() as admin, httpx.Client(timeout=10.0) as http:
        subject = admin.create_user(tenant, "alice")["sub"]
        answer = oauth_sign_in(http, module_issuer.url, f"{tenant}/alice", AUDIENCE)
        admin.revoke(tenant, "alice")
        refused = http.post(
            f"{module_issuer.url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": answer["refresh_token"],
                "client_id": answer["client_id"],
            },
        )
    assert refused.status_code == 400
    kinds = {event.token_kind: event for event in _events_for(module_issuer, tenant)}
    access, id_token = kinds["access_token"], kinds["id_token"]
    assert access.endpoint == "oauth-token" and access.grant_type == "authorization_code"
    assert (access.subject, access.audience, access.client_id) == (subject, AUDIENCE, answer["client_id"])
    assert access.jti == jwt.decode(answer["access_token"], options={"verify_signature": False})["jti"]
    assert id_token.audience == answer["client_id"] and id_token.header["typ"] == "JWT"  # type: ignore[index]
    # The refusal names no tenant in the request; find it by its client.
    app_events: TokenEvents = module_issuer.served.server.config.app.state.issuer.events  # type: ignore[attr-defined]
    [refusal] = [
        event
        for event in app_events.recent(500)
        if event.client_id == answer["client_id"] and event.outcome == "refused"
    ]
    assert refusal.grant_type == "refresh_token" and refusal.status == 400
    assert refusal.reason == "invalid_grant: the SSO grant of user 'alice' was revoked"


def test_the_console_shows_issued_and_refused_events(
    signed_in: ConsoleBrowser, module_issuer: RunningIssuer, tenant: str
) -> None:
    with module_issuer.admin() as admin, httpx.Client(timeout=10.0) as http:
        admin.create_user(tenant, "alice")
        admin.grant(tenant, "alice")
        token = _issue(http, module_issuer, tenant, "alice").json()["token"]
        admin.revoke(tenant, "alice")
        _issue(http, module_issuer, tenant, "alice")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    page = signed_in.page().text
    rows = re.findall(r'<tr class="event" data-outcome="(\w+)" data-jti="([^"]*)">', page)
    assert rows[:2] == [("refused", ""), ("issued", jti)]  # newest first
    assert "the SSO grant of user &#39;alice&#39; was revoked" in page
    assert f"&#34;jti&#34;: &#34;{jti}&#34;" in page  # the claims, decoded


def test_events_are_bounded_and_shared_through_the_database(tmp_path: Path) -> None:
    clock = FakeClock()
    path = str(tmp_path / "events.db")
    first, second = Database(path), Database(path)
    try:
        events = TokenEvents(first, clock, keep=3)
        other_worker = TokenEvents(second, clock, keep=3)
        for number in range(5):
            clock.now += 1
            worker = events if number % 2 else other_worker
            worker.record(endpoint="issue-token", outcome="refused", status=404, reason=f"refusal {number}")
            worker.flush()  # each worker's thread writes its own events, soon after; here, now
        recent = events.recent()
        assert [event.reason for event in recent] == ["refusal 4", "refusal 3", "refusal 2"]
        assert [event.at for event in recent] == [clock.now, clock.now - 1, clock.now - 2]
        assert [event.reason for event in other_worker.recent(2)] == ["refusal 4", "refusal 3"]
        events.close()
        other_worker.close()
    finally:
        first.close()
        second.close()


def test_events_live_beside_the_issuer_database_so_recording_one_leaves_it_unchanged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "issuer.db"
    issuer_db, reader = Database(str(path)), Database(str(path))
    try:
        events = TokenEvents(issuer_db, FakeClock())
        version = reader.data_version()
        events.record(endpoint="issue-token", outcome="refused", status=404, reason="unknown_user")
        events.flush()
        # Another worker's caches (keys, faults) and page cache stay valid: nothing changed for it.
        assert reader.data_version() == version
        assert stat.S_IMODE((tmp_path / "issuer.db-events").stat().st_mode) == 0o600
        seen_by_other_worker = TokenEvents(reader, FakeClock())
        assert [event.reason for event in seen_by_other_worker.recent()] == ["unknown_user"]
        seen_by_other_worker.close()
        events.close()
    finally:
        issuer_db.close()
        reader.close()


@pytest.mark.parametrize("text", ["", "a.b", "a.b.c", "e30.bm90IGpzb24.x", "W10.e30.x"])
def test_what_is_not_a_jws_is_not_decoded(text: str) -> None:
    assert decode_unverified(text) is None


def test_a_recorded_claim_set_is_capped(tmp_path: Path) -> None:
    db = Database(":memory:")
    try:
        events = TokenEvents(db, FakeClock())
        events.record(
            endpoint="x", outcome="issued", status=200, claims={"big": "x" * 20_000}, reason="y" * 2000
        )
        [event] = events.recent()
        assert event.claims == {"truncated": True} and event.reason == "y" * 512
    finally:
        db.close()


def test_a_refused_client_is_named_by_its_basic_credentials(module_issuer: RunningIssuer) -> None:
    with module_issuer.admin() as admin, httpx.Client(timeout=10.0) as http:
        client = admin.create_client(redirect_uris=["http://127.0.0.1:1/cb"])
        refused = http.post(
            f"{module_issuer.url}/token",
            data={
                "grant_type": "authorization_code",
                "code": "guessed",
                "redirect_uri": "http://127.0.0.1:1/cb",
            },
            auth=(client["client_id"], "not-" + client["client_secret"]),
        )
    assert refused.status_code == 401
    app_events: TokenEvents = module_issuer.served.server.config.app.state.issuer.events  # type: ignore[attr-defined]
    [event] = [event for event in app_events.recent(500) if event.client_id == client["client_id"]]
    assert (event.outcome, event.status, event.grant_type) == ("refused", 401, "authorization_code")
    assert event.reason is not None and event.reason.startswith("invalid_client")
    assert client["client_secret"] not in repr(event)
