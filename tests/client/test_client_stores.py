"""Identity modes, the provider store, end-user credentials, and encryption at rest."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

from client_runtime import (
    DATA_KEY_ENV,
    CredentialNotFoundError,
    CredentialType,
    Database,
    DataCipher,
    DataKeyError,
    DecryptionError,
    EndUserCredentialStore,
    IdentityMode,
    MCPCredentialRequiredError,
    MCPProvider,
    MCPProviderConfigError,
    MCPTokenError,
    ProviderNotFoundError,
    ProviderStore,
    TamperedRecordError,
    UnknownIdentityModeError,
    load_data_key,
)

KEY = bytes(range(32))
API_KEY = "sk-live-VERY-SECRET-api-key"
URL = "http://127.0.0.1:9/mcp"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "client.sqlite3"


@pytest.fixture
def database(db_path: Path) -> Database:
    return Database(db_path)


@pytest.fixture
def providers(database: Database) -> ProviderStore:
    return ProviderStore(database, DataCipher(KEY))


@pytest.fixture
def credentials(database: Database) -> EndUserCredentialStore:
    return EndUserCredentialStore(database, DataCipher(KEY))


def provider(**overrides: object) -> MCPProvider:
    values: dict[str, object] = {"provider_id": "notes", "tenant_id": "t1", "server_url": URL}
    values.update(overrides)
    return MCPProvider(**values)  # type: ignore[arg-type]


# --- identity modes -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["off", "idp_token", "end_user_credential", IdentityMode.IDP_TOKEN])
def test_mode_parse_accepts_known_values(value: str) -> None:
    assert IdentityMode.parse(value) == IdentityMode(value)


@pytest.mark.parametrize("value", ["", "OFF", "idp", "access_token", None, 1, True])
def test_mode_parse_rejects_unknown_values(value: object) -> None:
    with pytest.raises(UnknownIdentityModeError):
        IdentityMode.parse(value)


def test_only_off_does_not_forward() -> None:
    assert [m for m in IdentityMode if not m.forwards_identity] == [IdentityMode.OFF]


# --- providers ------------------------------------------------------------------------------------


def test_provider_defaults_and_effective_mode() -> None:
    p = provider(identity_mode="idp_token")
    assert p.identity_mode is IdentityMode.IDP_TOKEN
    assert p.token_header == "Authorization"
    assert p.effective_mode is IdentityMode.IDP_TOKEN
    assert provider(identity_mode="idp_token", enterprise_enabled=False).effective_mode is IdentityMode.OFF


@pytest.mark.parametrize(
    "overrides",
    [
        {"server_url": "127.0.0.1:9/mcp"},
        {"server_url": "ftp://127.0.0.1/mcp"},
        {"server_url": "http://user:pw@127.0.0.1/mcp"},
        {"provider_id": ""},
        {"tenant_id": ""},
        {"token_header": "Bad Header"},
        {"token_header": ""},
        {"static_headers": {"X-Ok": "a\r\nInjected: b"}},
        {"static_headers": {"bad name": "v"}},
        {"enterprise_enabled": "yes"},
    ],
)
def test_invalid_provider_config_is_a_named_error(overrides: dict[str, object]) -> None:
    with pytest.raises(MCPProviderConfigError):
        provider(**overrides)


def test_static_headers_are_immutable_and_hidden_from_repr() -> None:
    p = provider(static_headers={"Authorization": f"Bearer {API_KEY}"})
    assert API_KEY not in repr(p)
    with pytest.raises(TypeError):
        p.static_headers["X"] = "y"  # type: ignore[index]


def test_provider_store_round_trip(providers: ProviderStore) -> None:
    stored = provider(
        name="Notes",
        identity_mode="idp_token",
        static_headers={"Authorization": f"Bearer {API_KEY}"},
        token_header="X-Dify-SSO-Token",
    )
    providers.create(stored)
    assert providers.get("t1", "notes") == stored
    assert providers.get("t2", "notes") is None
    assert providers.list_providers("t1") == [stored]
    with pytest.raises(MCPProviderConfigError):
        providers.create(stored)


def test_session_reuse_is_stored_and_updated(providers: ProviderStore) -> None:
    assert provider().session_reuse is True
    providers.create(provider(session_reuse=False))
    assert providers.get("t1", "notes").session_reuse is False  # type: ignore[union-attr]
    assert providers.update("t1", "notes", name="renamed").session_reuse is False
    assert providers.update("t1", "notes", session_reuse=True).session_reuse is True
    assert providers.get("t1", "notes").session_reuse is True  # type: ignore[union-attr]
    with pytest.raises(MCPProviderConfigError):
        provider(session_reuse="no")


def test_static_headers_are_encrypted_at_rest(providers: ProviderStore, db_path: Path) -> None:
    providers.create(provider(static_headers={"Authorization": f"Bearer {API_KEY}"}))
    assert API_KEY.encode() not in db_path.read_bytes()


def test_update_with_none_leaves_fields_unchanged(providers: ProviderStore) -> None:
    providers.create(provider(identity_mode="idp_token", static_headers={"X-Key": "k"}, token_header="X-SSO"))
    updated = providers.update("t1", "notes", server_url="http://127.0.0.1:10/mcp")
    assert updated.identity_mode is IdentityMode.IDP_TOKEN
    assert dict(updated.static_headers) == {"X-Key": "k"}
    assert updated.token_header == "X-SSO"
    assert updated.enterprise_enabled is True
    assert providers.get("t1", "notes") == updated
    assert updated.server_url == "http://127.0.0.1:10/mcp"


def test_update_changes_what_is_given(providers: ProviderStore) -> None:
    providers.create(provider(identity_mode="idp_token"))
    updated = providers.update(
        "t1", "notes", identity_mode="off", enterprise_enabled=False, static_headers={}
    )
    assert (updated.identity_mode, updated.enterprise_enabled) == (IdentityMode.OFF, False)
    assert providers.get("t1", "notes") == updated


def test_update_validates_and_keeps_the_row_on_error(providers: ProviderStore) -> None:
    providers.create(provider(identity_mode="idp_token"))
    with pytest.raises(UnknownIdentityModeError):
        providers.update("t1", "notes", identity_mode="bogus")
    with pytest.raises(MCPProviderConfigError):
        providers.update("t1", "notes", server_url="not a url")
    assert providers.get("t1", "notes") == provider(identity_mode="idp_token")
    with pytest.raises(ProviderNotFoundError):
        providers.update("t1", "missing", name="x")


def test_a_stored_mode_edited_in_the_file_is_refused_never_read_as_off(
    providers: ProviderStore, db_path: Path
) -> None:
    providers.create(provider(identity_mode="idp_token"))
    for edited in ("legacy_sso", "off"):
        with sqlite3.connect(db_path) as raw:
            raw.execute("UPDATE mcp_providers SET identity_mode = ?", (edited,))
        with pytest.raises(TamperedRecordError):
            providers.get("t1", "notes")


def test_delete(providers: ProviderStore) -> None:
    providers.create(provider())
    assert providers.delete("t1", "notes") is True
    assert providers.delete("t1", "notes") is False
    assert providers.get("t1", "notes") is None


# --- end-user credentials -------------------------------------------------------------------------


def test_credential_create_defaults(credentials: EndUserCredentialStore) -> None:
    cred = credentials.create("t1", "eu-1", "notes", {"api_key": API_KEY}, server_url=URL)
    assert cred.name == "API KEY 1"
    assert cred.credential_type is CredentialType.API_KEY
    assert cred.expires_at == -1
    assert cred.created_at.tzinfo == UTC and cred.updated_at == cred.created_at
    assert cred.secret == API_KEY
    assert API_KEY not in repr(cred)
    assert credentials.get(cred.id) == cred


def test_credentials_are_encrypted_at_rest(credentials: EndUserCredentialStore, db_path: Path) -> None:
    credentials.create("t1", "eu-1", "notes", {"api_key": API_KEY}, server_url=URL)
    assert API_KEY.encode() not in db_path.read_bytes()


def test_names_may_repeat_and_ids_identify(credentials: EndUserCredentialStore) -> None:
    first = credentials.create("t1", "eu-1", "notes", {"api_key": "k1"}, server_url=URL)
    second = credentials.create("t1", "eu-1", "notes", {"api_key": "k2"}, server_url=URL)
    assert first.name == second.name and first.id != second.id
    assert [c.id for c in credentials.list_credentials("t1", "eu-1", "notes")] == [second.id, first.id]
    assert credentials.list_credentials("t1", "eu-2") == []


def test_credential_update_and_delete(credentials: EndUserCredentialStore) -> None:
    cred = credentials.create(
        "t1", "eu-1", "notes", {"access_token": "at-1"}, server_url=URL, credential_type="oauth2"
    )
    updated = credentials.update(cred.id, credentials={"access_token": "at-2"}, expires_at=2_000_000_000)
    assert updated.secret == "at-2"
    assert updated.name == cred.name
    assert updated.expires_at == 2_000_000_000
    assert updated.updated_at >= cred.updated_at
    assert credentials.update(cred.id, name="Work").name == "Work"
    assert credentials.delete(cred.id) is True
    with pytest.raises(CredentialNotFoundError):
        credentials.get(cred.id)


@pytest.mark.parametrize(
    ("credential_type", "secret", "expires_at"),
    [
        ("api-key", {}, -1),
        ("api-key", {"api_key": ""}, -1),
        ("api-key", {"access_token": "x"}, -1),
        ("oauth2", {"api_key": "x"}, -1),
        ("api-key", {"api_key": "x\r\ny"}, -1),
        ("api-key", {"api_key": "x"}, -2),
        ("api-key", {"api_key": "x"}, True),
    ],
)
def test_invalid_credentials_are_refused(
    credentials: EndUserCredentialStore, credential_type: str, secret: dict[str, str], expires_at: int
) -> None:
    with pytest.raises(ValueError):
        credentials.create(
            "t1",
            "eu-1",
            "notes",
            secret,
            server_url=URL,
            credential_type=credential_type,
            expires_at=expires_at,
        )


def test_unknown_credential_type_is_refused(credentials: EndUserCredentialStore) -> None:
    with pytest.raises(ValueError):
        credentials.create("t1", "eu-1", "notes", {"api_key": "x"}, server_url=URL, credential_type="basic")


def test_usable_picks_the_newest_unexpired(credentials: EndUserCredentialStore) -> None:
    good = credentials.create("t1", "eu-1", "notes", {"api_key": "old"}, server_url=URL)
    credentials.create("t1", "eu-1", "notes", {"api_key": "expired"}, server_url=URL, expires_at=1_000)
    assert credentials.usable("t1", "eu-1", "notes", server_url=URL, now=2_000).id == good.id


def test_usable_fails_closed_with_connect_your_account(credentials: EndUserCredentialStore) -> None:
    with pytest.raises(MCPCredentialRequiredError) as missing:
        credentials.usable("t1", "eu-1", "notes", server_url=URL)
    assert missing.value.reason == "missing"
    assert isinstance(missing.value, MCPTokenError)
    assert "Connect your account" in missing.value.user_message

    credentials.create("t1", "eu-1", "notes", {"api_key": "k"}, server_url=URL, expires_at=1_000)
    with pytest.raises(MCPCredentialRequiredError) as expired:
        credentials.usable("t1", "eu-1", "notes", server_url=URL, now=1_000)
    assert expired.value.reason == "expired"


def test_usable_by_id_refuses_someone_elses_credential(credentials: EndUserCredentialStore) -> None:
    bobs = credentials.create("t1", "bob", "notes", {"api_key": "bobs-key"}, server_url=URL)
    with pytest.raises(MCPCredentialRequiredError):
        credentials.usable("t1", "alice", "notes", server_url=URL, credential_id=bobs.id)
    with pytest.raises(MCPCredentialRequiredError):
        credentials.usable("t1", "bob", "other-provider", server_url=URL, credential_id=bobs.id)
    with pytest.raises(MCPCredentialRequiredError):
        credentials.usable("t1", "bob", "notes", server_url=URL, credential_id="no-such-id")
    assert (
        credentials.usable("t1", "bob", "notes", server_url=URL, credential_id=bobs.id).secret == "bobs-key"
    )


def test_a_row_moved_to_another_user_does_not_decrypt(
    credentials: EndUserCredentialStore, db_path: Path
) -> None:
    bobs = credentials.create("t1", "bob", "notes", {"api_key": "bobs-key"}, server_url=URL)
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE end_user_credentials SET end_user_id = 'alice'")
    with pytest.raises(DecryptionError):
        credentials.get(bobs.id)


def test_wrong_key_does_not_decrypt(database: Database) -> None:
    cred = EndUserCredentialStore(database, DataCipher(KEY)).create(
        "t1", "eu", "p", {"api_key": "k"}, server_url=URL
    )
    with pytest.raises(DecryptionError):
        EndUserCredentialStore(database, DataCipher(bytes(32))).get(cred.id)


# --- data key -------------------------------------------------------------------------------------


def test_key_sources_in_order(tmp_path: Path) -> None:
    encoded = base64.urlsafe_b64encode(KEY).decode().rstrip("=")
    assert load_data_key(KEY) == KEY
    assert load_data_key(encoded) == KEY
    assert load_data_key(environ={DATA_KEY_ENV: encoded}, key_file=tmp_path / "k") == KEY
    assert not (tmp_path / "k").exists()


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    key = load_data_key(key_file=path, environ={})
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_data_key(key_file=path, environ={}) == key


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    load_data_key(key_file=path, environ={})
    os.chmod(path, 0o644)
    with pytest.raises(DataKeyError):
        load_data_key(key_file=path, environ={})


@pytest.mark.parametrize("bad", [b"short", "not base64 !!", base64.urlsafe_b64encode(b"x" * 16).decode()])
def test_malformed_keys_are_refused(bad: bytes | str) -> None:
    with pytest.raises(DataKeyError):
        load_data_key(bad)


def test_no_key_source_is_an_error() -> None:
    with pytest.raises(DataKeyError):
        load_data_key(environ={})


def test_cipher_repr_hides_the_key() -> None:
    assert KEY.hex() not in repr(DataCipher(KEY)) and str(KEY) not in repr(DataCipher(KEY))


# --- file modes -----------------------------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which SQLite on its own creates a world-readable file."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_database_files_with_wal_and_shm_are_created_0600(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "client.sqlite3"
    database = Database(path)
    ProviderStore(database, DataCipher(KEY)).create(provider(static_headers={"X-Key": API_KEY}))
    database.close()
    # A host may run the file in WAL mode (it persists in the file); the side files must be private too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    database = Database(path)
    EndUserCredentialStore(database, DataCipher(KEY)).create(
        "t1", "eu-1", "notes", {"api_key": API_KEY}, server_url=URL
    )
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    database.close()


def test_key_file_is_created_0600_under_a_permissive_umask(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "data.key"
    load_data_key(key_file=path, environ={})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
