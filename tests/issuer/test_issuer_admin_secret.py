"""Contract C2: the inner secret opens issue-token only; the admin API takes only the admin secret."""

from __future__ import annotations

import httpx
import pytest
from issuer_support import ADMIN_AUTH, ADMIN_SECRET, AUDIENCE, INNER_AUTH, ISSUE_PATH, SECRET, RunningIssuer

from fake_enterprise import AdminAPIError, AdminClient

ISSUE_BODY = {"tenant_id": "acme", "user_id": "alice", "app_id": "", "audience": AUDIENCE}


def test_the_inner_secret_cannot_mint_or_change_state(module_issuer: RunningIssuer) -> None:
    # What the audit did with the secret every host holds: mint any identity with the real key.
    with httpx.Client(base_url=module_issuer.url, timeout=10) as http:
        for headers in (INNER_AUTH, {"Authorization": f"Bearer {SECRET}"}):
            minted = http.post("/admin/mint", json={"claims": {"sub": "anyone"}}, headers=headers)
            assert minted.status_code == 401
            assert minted.json()["error"] == "invalid_token"
            assert minted.headers["www-authenticate"].startswith('Bearer realm="mcp-idfwd-admin"')
            rotated = http.post("/admin/keys/rotate", headers=headers)
            assert rotated.status_code == 401
    holding_the_inner_secret = AdminClient(module_issuer.url, SECRET)
    with holding_the_inner_secret, pytest.raises(AdminAPIError) as refused:
        holding_the_inner_secret.mint({"sub": "anyone"})
    assert refused.value.status == 401


def test_the_admin_secret_does_not_open_issue_token(module_issuer: RunningIssuer) -> None:
    with httpx.Client(base_url=module_issuer.url, timeout=10) as http:
        for headers in ({"Enterprise-Api-Secret-Key": ADMIN_SECRET}, ADMIN_AUTH):
            response = http.post(ISSUE_PATH, json=ISSUE_BODY, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"] == "invalid_client"


def test_a_bearer_admin_secret_opens_the_admin_api(module_issuer: RunningIssuer) -> None:
    with httpx.Client(base_url=module_issuer.url, timeout=10) as http:
        lower_case_scheme = {"Authorization": f"bearer {ADMIN_SECRET}"}
        for headers in (ADMIN_AUTH, lower_case_scheme):
            response = http.post("/admin/mint", json={"claims": {"sub": "x"}}, headers=headers)
            assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (ISSUE_PATH, [("Enterprise-Api-Secret-Key", SECRET), ("Enterprise-Api-Secret-Key", SECRET)]),
        (ISSUE_PATH, [("Enterprise-Api-Secret-Key", "wrong"), ("Enterprise-Api-Secret-Key", SECRET)]),
        (ISSUE_PATH, [*INNER_AUTH.items(), ("Authorization", "Bearer a"), ("Authorization", "Bearer b")]),
        (
            "/admin/mint",
            [("Authorization", f"Bearer {ADMIN_SECRET}"), ("Authorization", f"Bearer {ADMIN_SECRET}")],
        ),
        ("/admin/mint", [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {ADMIN_SECRET}")]),
        (
            "/admin/mint",
            [*ADMIN_AUTH.items(), ("Enterprise-Api-Secret-Key", "a"), ("Enterprise-Api-Secret-Key", "b")],
        ),
    ],
    ids=[
        "inner-twice",
        "inner-wrong-then-right",
        "inner-two-authorization",
        "admin-twice",
        "admin-wrong-then-right",
        "admin-two-inner-headers",
    ],
)
def test_a_secret_header_sent_twice_is_refused(
    module_issuer: RunningIssuer, path: str, headers: list[tuple[str, str]]
) -> None:
    body = ISSUE_BODY if path == ISSUE_PATH else {"claims": {"sub": "x"}}
    with httpx.Client(base_url=module_issuer.url, timeout=10) as http:
        response = http.post(path, json=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "more than once" in response.json()["message"]
    assert SECRET not in response.text and ADMIN_SECRET not in response.text
