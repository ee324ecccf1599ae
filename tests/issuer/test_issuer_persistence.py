"""Storage: restarts keep users, grants and keys; secrets are sealed at rest; the data key is guarded."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
from issuer_support import ADMIN_SECRET, AUDIENCE, SECRET, StartIssuer

from fake_enterprise import DATA_KEY_ENV, AdminAPIError, DataKeyError, IssuerSettings, create_app

REFRESH_TOKEN = "idp-refresh-token-PLAINTEXT-7d2e"


@pytest.fixture(autouse=True)
def _no_data_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_KEY_ENV, raising=False)


def _settings(db_path: str, **overrides: Any) -> IssuerSettings:
    return IssuerSettings(
        issuer_url="http://127.0.0.1:1",
        secret=SECRET,
        admin_secret=ADMIN_SECRET,
        db_path=db_path,
        **overrides,
    )


def _db_bytes(db: Path) -> bytes:
    return b"".join(path.read_bytes() for path in db.parent.glob(db.name + "*") if path.suffix != ".key")


def test_a_restart_keeps_users_grants_policies_and_keys(start_issuer: StartIssuer, tmp_path: Path) -> None:
    db = str(tmp_path / "issuer.db")
    first = start_issuer(db_path=db)
    with first.admin() as admin:
        admin.create_user("acme", "alice", email="alice@acme.test", token_profile="access_token")
        admin.grant("acme", "alice")
        admin.create_user("acme", "bob")
        admin.grant("acme", "bob")
        admin.revoke("acme", "bob")
        admin.create_user("acme", "carol")
        admin.set_policy("acme", allowed_audiences=[AUDIENCE])
        old_kid = admin.rotate_keys()
        token = admin.issue_token("acme", "alice", AUDIENCE)["token"]
        jwks_before = admin.jwks()
    first.served.stop()

    second = start_issuer(db_path=db)
    with second.admin() as admin:
        assert admin.jwks() == jwks_before
        fresh = admin.issue_token("acme", "alice", AUDIENCE)["token"]
        assert jwt.get_unverified_header(fresh) == {"alg": "RS256", "kid": old_kid, "typ": "at+jwt"}
        keys = jwt.PyJWKSet.from_dict(admin.jwks())
        claims = jwt.decode(token, keys[old_kid].key, algorithms=["RS256"], audience=AUDIENCE)
        assert claims["email"] == "alice@acme.test"
        for user, status, error in [
            ("bob", 401, "refresh_rejected"),
            ("carol", 428, "no_refresh_token"),
            ("dave", 404, "unknown_user"),
        ]:
            with pytest.raises(AdminAPIError) as info:
                admin.issue_token("acme", user, AUDIENCE)
            assert (info.value.status, info.value.error) == (status, error)
        with pytest.raises(AdminAPIError) as info:
            admin.issue_token("acme", "alice", "http://127.0.0.1:1/not-allowed")
        assert info.value.status == 403
        with pytest.raises(AdminAPIError) as info:
            admin.create_user("acme", "alice")
        assert info.value.status == 409


def test_restarting_with_another_alg_rotates_and_keeps_the_old_key(
    start_issuer: StartIssuer, tmp_path: Path
) -> None:
    db = str(tmp_path / "issuer.db")
    first = start_issuer(db_path=db)
    with first.admin() as admin:
        (rsa_key,) = admin.jwks()["keys"]
    first.served.stop()
    with start_issuer(db_path=db, alg="EdDSA").admin() as admin:
        keys = admin.jwks()["keys"]
    assert [key["alg"] for key in keys] == ["EdDSA", "RS256"]
    assert keys[1] == rsa_key


def test_the_key_file_is_created_with_mode_0600(start_issuer: StartIssuer, tmp_path: Path) -> None:
    db = tmp_path / "issuer.db"
    start_issuer(db_path=str(db))
    key_file = tmp_path / "issuer.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    text = key_file.read_text().strip()
    assert len(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) == 32


def test_grants_and_private_keys_are_sealed_at_rest(start_issuer: StartIssuer, tmp_path: Path) -> None:
    db = tmp_path / "issuer.db"
    issuer = start_issuer(db_path=str(db))
    with issuer.admin() as admin:
        admin.create_user("acme", "alice")
        admin.grant("acme", "alice", refresh_token=REFRESH_TOKEN)
        assert admin.issue_token("acme", "alice", AUDIENCE)["token"]
    issuer.served.stop()
    stored = _db_bytes(db)
    assert b"alice" in stored, "the check reads the right files"
    assert REFRESH_TOKEN.encode() not in stored
    assert b"PRIVATE KEY" not in stored
    assert SECRET.encode() not in stored


def test_a_grant_moved_to_another_user_is_rejected(start_issuer: StartIssuer, tmp_path: Path) -> None:
    db = tmp_path / "issuer.db"
    issuer = start_issuer(db_path=str(db))
    with issuer.admin() as admin:
        for user in ("alice", "mallory"):
            admin.create_user("acme", user)
            admin.grant("acme", user)
    issuer.served.stop()
    with sqlite3.connect(db) as conn:
        query = "SELECT sealed_refresh_token FROM grants WHERE user_id = 'alice'"
        (alice_grant,) = conn.execute(query).fetchone()
        conn.execute("UPDATE grants SET sealed_refresh_token = ? WHERE user_id = 'mallory'", (alice_grant,))
    conn.close()
    with start_issuer(db_path=str(db)).admin() as admin:
        assert admin.issue_token("acme", "alice", AUDIENCE)["token"]
        with pytest.raises(AdminAPIError) as info:
            admin.issue_token("acme", "mallory", AUDIENCE)
        assert (info.value.status, info.value.error) == (401, "refresh_rejected")


def test_the_wrong_data_key_is_refused_at_start(tmp_path: Path) -> None:
    db = str(tmp_path / "issuer.db")
    create_app(_settings(db, data_key=b"a" * 32)).state.issuer.close()
    with pytest.raises(DataKeyError, match="does not open"):
        create_app(_settings(db, data_key=b"b" * 32))


def test_the_data_key_from_the_environment_is_used(
    start_issuer: StartIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "issuer.db"
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(DATA_KEY_ENV, key)
    first = start_issuer(db_path=str(db))
    with first.admin() as admin:
        admin.create_user("acme", "alice")
        admin.grant("acme", "alice")
    first.served.stop()
    assert not (tmp_path / "issuer.db.key").exists()
    with start_issuer(db_path=str(db)).admin() as admin:
        assert admin.issue_token("acme", "alice", AUDIENCE)["token"]
    monkeypatch.setenv(DATA_KEY_ENV, base64.urlsafe_b64encode(os.urandom(32)).decode())
    with pytest.raises(DataKeyError):
        create_app(_settings(str(db)))


@pytest.mark.parametrize("value", ["not base64!", base64.urlsafe_b64encode(b"short").decode()])
def test_a_malformed_data_key_in_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(DATA_KEY_ENV, value)
    with pytest.raises(DataKeyError) as info:
        create_app(_settings(str(tmp_path / "x.db")))
    assert value not in str(info.value)


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "issuer.db.key"
    key_file.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode())
    key_file.chmod(0o644)
    with pytest.raises(DataKeyError, match="chmod 600"):
        create_app(_settings(str(tmp_path / "issuer.db")))


def test_the_database_its_events_file_and_their_wal_and_shm_are_created_owner_only(
    start_issuer: StartIssuer, tmp_path: Path
) -> None:
    db = tmp_path / "issuer.db"
    issuer = start_issuer(db_path=str(db))
    with issuer.admin() as admin:
        admin.create_user("acme", "alice")  # a write: the WAL and SHM exist now
        files = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
    events = {"issuer.db-events", "issuer.db-events-wal", "issuer.db-events-shm"}
    assert set(files) == {"issuer.db", "issuer.db-wal", "issuer.db-shm", "issuer.db.key", *events}
    assert set(files.values()) == {0o600}, files
