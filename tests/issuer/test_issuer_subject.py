"""Contract C1: every (tenant, user) has an opaque `sub` of its own, stable across restarts and rotations."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import jwt
import pytest
from issuer_support import AUDIENCE, RunningIssuer, StartIssuer

from fake_enterprise import DATA_KEY_ENV, AdminClient

_SUBJECT = re.compile("[0-9a-f]{32}")


@pytest.fixture(autouse=True)
def _no_data_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_KEY_ENV, raising=False)


def _claims(admin: AdminClient, tenant_id: str, user_id: str) -> dict[str, object]:
    token = admin.issue_token(tenant_id, user_id, AUDIENCE)["token"]
    return jwt.decode(token, options={"verify_signature": False})


def _sign_in(admin: AdminClient, tenant_id: str, user_id: str) -> str:
    created = admin.create_user(tenant_id, user_id, name=user_id.title())
    admin.grant(tenant_id, user_id)
    return str(created["sub"])


def test_same_named_users_of_two_tenants_get_different_opaque_subjects(issuer: RunningIssuer) -> None:
    with issuer.admin() as admin:
        acme_sub = _sign_in(admin, "acme", "alice")
        globex_sub = _sign_in(admin, "globex", "alice")
        acme, globex = _claims(admin, "acme", "alice"), _claims(admin, "globex", "alice")
    assert _SUBJECT.fullmatch(acme_sub) and _SUBJECT.fullmatch(globex_sub)
    assert acme_sub != globex_sub
    assert (acme["sub"], acme["tenant_id"], acme["preferred_username"]) == (acme_sub, "acme", "alice")
    assert (globex["sub"], globex["tenant_id"], globex["preferred_username"]) == (
        globex_sub,
        "globex",
        "alice",
    )
    assert acme["name"] == "Alice"
    assert "alice" not in acme_sub


def test_the_subject_survives_restarts_and_key_rotations(start_issuer: StartIssuer, tmp_path: Path) -> None:
    db = str(tmp_path / "issuer.db")
    first = start_issuer(db_path=db)
    with first.admin() as admin:
        subject = _sign_in(admin, "acme", "alice")
        admin.rotate_keys("ES256")
        assert _claims(admin, "acme", "alice")["sub"] == subject
    first.served.stop()
    with start_issuer(db_path=db).admin() as admin:
        assert _claims(admin, "acme", "alice")["sub"] == subject


def test_discovery_lists_the_identity_claims(issuer: RunningIssuer) -> None:
    with issuer.admin() as admin:
        claims = admin.discovery()["claims_supported"]
    assert {"sub", "tenant_id", "preferred_username"} <= set(claims)


def test_a_database_from_before_subjects_gets_one_per_user(start_issuer: StartIssuer, tmp_path: Path) -> None:
    db = tmp_path / "issuer.db"
    first = start_issuer(db_path=str(db))
    with first.admin() as admin:
        for tenant in ("acme", "globex"):
            _sign_in(admin, tenant, "alice")
    first.served.stop()
    # Turn the file back into schema 1: the `users` table as it was, without `subject`.
    with sqlite3.connect(db) as conn:
        conn.execute("DROP INDEX users_by_subject")
        conn.execute("ALTER TABLE users DROP COLUMN subject")
        conn.execute("PRAGMA user_version = 1")
    conn.close()

    second = start_issuer(db_path=str(db))
    with second.admin() as admin:
        acme, globex = _claims(admin, "acme", "alice")["sub"], _claims(admin, "globex", "alice")["sub"]
        created = _sign_in(admin, "acme", "bob")
    second.served.stop()
    assert all(_SUBJECT.fullmatch(str(sub)) for sub in (acme, globex, created))
    assert len({acme, globex, created}) == 3
    with start_issuer(db_path=str(db)).admin() as admin:
        assert _claims(admin, "acme", "alice")["sub"] == acme
