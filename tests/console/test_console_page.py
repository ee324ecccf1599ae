"""What the console shows and does: users and grants, keys, policies, faults, clients; escaped; no tokens."""

from __future__ import annotations

import html
from pathlib import Path

import httpx
import pytest
from console_support import (
    ADMIN_SECRET,
    AUDIENCE,
    SECRET,
    ConsoleBrowser,
    RunningIssuer,
    StartIssuer,
    oauth_sign_in,
)
from markupsafe import escape

from fake_enterprise import AdminAPIError


def _flash(page: str) -> str:
    start = page.index('id="flash">') + len('id="flash">')
    return html.unescape(page[start : page.index("</div>", start)])


def _act(console: ConsoleBrowser, path: str, data: dict[str, str]) -> str:
    """Post a console form as the page offers it; the flash message the page then shows."""
    answer = console.post(path, data)
    assert answer.status_code == 303 and answer.headers["location"] == "/console", answer.text
    return _flash(console.page().text)


def test_create_user_grant_and_revoke_from_the_console(
    signed_in: ConsoleBrowser, module_issuer: RunningIssuer, tenant: str
) -> None:
    created = _act(signed_in, "/console/users", {"tenant_id": tenant, "user_id": "alice", "name": "Alice"})
    assert created.startswith(f"Created user {tenant}/alice (sub ")
    page = signed_in.page().text
    assert f'data-user="{tenant}/alice"' in page
    with module_issuer.admin() as admin:
        with pytest.raises(AdminAPIError) as never:
            admin.issue_token(tenant, "alice", AUDIENCE)
        assert never.value.error == "no_refresh_token"

        assert _act(
            signed_in, "/console/grants", {"tenant_id": tenant, "user_id": "alice", "action": "grant"}
        )
        assert admin.issue_token(tenant, "alice", AUDIENCE)["token"]

        revoked = _act(
            signed_in, "/console/grants", {"tenant_id": tenant, "user_id": "alice", "action": "revoke"}
        )
        assert revoked == f"Revoked the SSO grant of {tenant}/alice."
        with pytest.raises(AdminAPIError) as refused:
            admin.issue_token(tenant, "alice", AUDIENCE)
        assert refused.value.error == "refresh_rejected"
    again = _act(signed_in, "/console/grants", {"tenant_id": tenant, "user_id": "alice", "action": "revoke"})
    assert again == f"{tenant}/alice had no active grant to revoke."


def test_a_flash_message_is_shown_once(signed_in: ConsoleBrowser, tenant: str) -> None:
    _act(signed_in, "/console/users", {"tenant_id": tenant, "user_id": "alice"})
    assert 'id="flash"' not in signed_in.page().text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tenant_id": "", "user_id": "alice"}, "tenant_id must be 1 to 256 characters"),
        ({"tenant_id": "a/b", "user_id": "alice"}, "tenant_id must not contain '/'"),
        ({"tenant_id": "t", "user_id": "alice", "email": "x" * 400}, "email must be at most 320 characters"),
    ],
)
def test_bad_input_is_told_in_the_page(signed_in: ConsoleBrowser, data: dict[str, str], message: str) -> None:
    assert message in _act(signed_in, "/console/users", data)


def test_errors_of_the_issuer_are_told_in_the_page(signed_in: ConsoleBrowser, tenant: str) -> None:
    _act(signed_in, "/console/users", {"tenant_id": tenant, "user_id": "alice"})
    exists = _act(signed_in, "/console/users", {"tenant_id": tenant, "user_id": "alice"})
    assert exists == f"user 'alice' already exists in tenant '{tenant}'"
    unknown = _act(
        signed_in, "/console/grants", {"tenant_id": tenant, "user_id": "nobody", "action": "grant"}
    )
    assert unknown == f"no user 'nobody' in tenant '{tenant}'"


def test_a_tenant_policy_set_in_the_console_is_enforced(
    signed_in: ConsoleBrowser, module_issuer: RunningIssuer, tenant: str
) -> None:
    with module_issuer.admin() as admin:
        admin.create_user(tenant, "alice")
        admin.grant(tenant, "alice")
        message = _act(
            signed_in, "/console/policies", {"tenant_id": tenant, "allowed_audiences": f"{AUDIENCE}\r\n"}
        )
        assert message == f"Policy of {tenant}: allowed, 1 audience(s)."
        assert admin.issue_token(tenant, "alice", AUDIENCE)["token"]
        with pytest.raises(AdminAPIError) as other:
            admin.issue_token(tenant, "alice", "http://127.0.0.1:9/other")
        assert other.value.error == "policy_denied"
        _act(signed_in, "/console/policies", {"tenant_id": tenant, "deny": "on"})
        with pytest.raises(AdminAPIError) as denied:
            admin.issue_token(tenant, "alice", AUDIENCE)
        assert denied.value.error == "policy_denied"
    page = signed_in.page().text
    assert f'data-tenant="{tenant}"' in page and "denied" in page
    bad = _act(signed_in, "/console/policies", {"tenant_id": tenant, "allowed_audiences": "not a url"})
    assert "allowed audience must not contain whitespace" in bad


def test_rotate_keys_from_the_console(start_issuer: StartIssuer) -> None:
    issuer = start_issuer()
    with httpx.Client(base_url=issuer.url, timeout=10.0) as http, issuer.admin() as admin:
        console = ConsoleBrowser(http)
        console.sign_in()
        before = admin.jwks()["keys"][0]["kid"]
        assert f'data-kid="{before}" data-current="yes"' in console.page().text
        message = _act(console, "/console/keys/rotate", {"alg": "ES256"})
        after = admin.jwks()["keys"][0]
        assert after["kid"] != before and after["alg"] == "ES256"
        assert message == f"Rotated: the new signing key is {after['kid']} (ES256)."
        page = console.page().text
        assert f'data-kid="{after["kid"]}" data-current="yes"' in page
        assert f'data-kid="{before}" data-current="no"' in page
        assert "alg must be one of" in _act(console, "/console/keys/rotate", {"alg": "HS256"})


def test_fault_switches_from_the_console(start_issuer: StartIssuer) -> None:
    issuer = start_issuer()
    with httpx.Client(base_url=issuer.url, timeout=10.0) as http, issuer.admin() as admin:
        console = ConsoleBrowser(http)
        console.sign_in()
        admin.create_user("acme", "alice")
        admin.grant("acme", "alice")
        assert (
            _act(console, "/console/faults", {"action": "set", "issue_token_status": "503"}) == "Faults set."
        )
        with pytest.raises(AdminAPIError) as forced:
            admin.issue_token("acme", "alice", AUDIENCE)
        assert forced.value.status == 503
        assert "issue-token status 503" in console.page().text
        assert _act(console, "/console/faults", {"action": "clear"}) == "Faults cleared."
        assert admin.issue_token("acme", "alice", AUDIENCE)["token"]
        _act(console, "/console/faults", {"action": "set", "jwks_unavailable": "on"})
        assert http.get("/.well-known/jwks.json").status_code == 503
        bad = _act(console, "/console/faults", {"action": "set", "issue_token_status": "200"})
        assert bad == "issue_token_status must be a whole number from 400 to 599"


def test_oauth_clients_are_listed_without_their_secrets(
    signed_in: ConsoleBrowser, module_issuer: RunningIssuer
) -> None:
    with module_issuer.admin() as admin:
        client = admin.create_client(client_name="Listed <client>", redirect_uris=["http://127.0.0.1:1/cb"])
    page = signed_in.page().text
    assert client["client_id"] in page and "Listed &lt;client&gt;" in page
    assert client["client_secret"] not in page


def test_user_supplied_text_is_escaped(signed_in: ConsoleBrowser, module_issuer: RunningIssuer) -> None:
    tenant = '<img src=x onerror="alert(1)">'
    name = "<script>alert('name')</script>"
    email = '"><svg onload=alert(2)>@x'
    with module_issuer.admin() as admin:
        admin.create_user(tenant, "<b>bob&amp;", name=name, email=email)
        admin.grant(tenant, "<b>bob&amp;")
        admin.issue_token(tenant, "<b>bob&amp;", AUDIENCE)
        admin.set_policy(tenant, allowed_audiences=["http://127.0.0.1:9/<i>"])
    page = signed_in.page().text
    for raw in (tenant, name, email, "<b>bob&amp;", "<i>"):
        assert raw not in page
        assert str(escape(raw)) in page
    assert "<script" not in page


def test_the_page_never_shows_a_token_or_a_secret(
    signed_in: ConsoleBrowser, module_issuer: RunningIssuer, tenant: str
) -> None:
    with module_issuer.admin() as admin, httpx.Client(timeout=10.0) as http:
        admin.create_user(tenant, "alice")
        admin.grant(tenant, "alice")
        issued = admin.issue_token(tenant, "alice", AUDIENCE)["token"]
        minted = admin.mint({"sub": "x", "aud": AUDIENCE})
        oauth = oauth_sign_in(http, module_issuer.url, f"{tenant}/alice", AUDIENCE)
    page = signed_in.page().text
    tokens = [issued, minted, oauth["access_token"], oauth["id_token"], oauth["refresh_token"]]
    for token in tokens:
        assert token not in page
    for token in tokens[:4]:
        assert token.split(".")[2] not in page  # no signature
    assert issued.split(".")[1] not in page  # the claims are shown decoded, not as base64url
    assert SECRET not in page and ADMIN_SECRET not in page


def test_the_event_table_holds_no_token(start_issuer: StartIssuer, tmp_path: Path) -> None:
    db_path = tmp_path / "issuer.db"
    issuer = start_issuer(db_path=str(db_path), auto_login=True)
    with issuer.admin() as admin, httpx.Client(timeout=10.0) as http:
        admin.create_user("acme", "alice")
        admin.grant("acme", "alice")
        issued = admin.issue_token("acme", "alice", AUDIENCE)["token"]
        oauth = oauth_sign_in(http, issuer.url, "acme/alice", AUDIENCE)
        refused = http.post(
            f"{issuer.url}/token",
            data={"grant_type": "refresh_token", "refresh_token": "guessed-" + oauth["refresh_token"]},
        )
        assert refused.status_code in (400, 401)
        wrong_secret = http.post(
            f"{issuer.url}/inner/api/mcp/issue-token",
            json={"tenant_id": "acme", "user_id": "alice", "app_id": "", "audience": AUDIENCE},
            headers={"Enterprise-Api-Secret-Key": "not-" + SECRET},
        )
        assert wrong_secret.status_code == 401
    stored = db_path.read_bytes() + (tmp_path / "issuer.db-wal").read_bytes()
    secrets_and_tokens = [issued, oauth["access_token"], oauth["id_token"], oauth["refresh_token"], SECRET]
    for value in secrets_and_tokens:
        assert value.encode() not in stored
    for token in (issued, oauth["access_token"], oauth["id_token"]):
        assert token.split(".")[2].encode() not in stored
