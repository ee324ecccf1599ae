"""Stored providers and end-user credentials are authenticated at rest: every field that decides
where a secret goes is in the AES-GCM associated data, so a row edited in the file is refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from client_support import TENANT, RequestLog, Stack

from client_runtime import (
    Database,
    DataCipher,
    DecryptionError,
    EndUserCredentialStore,
    IdentityMode,
    LegacyRecordsError,
    MCPCredentialRequiredError,
    MCPProvider,
    MCPToolRuntime,
    ProviderStore,
    SchemaVersionError,
    TamperedRecordError,
    reseal_legacy_rows,
)

KEY = bytes(range(32))
API_KEY = "sk-live-stored-API-key-of-the-tenant"
USER_KEY = "eu-own-API-key-never-elsewhere"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "client.sqlite3"


def edit(db_path: Path, sql: str, *params: object) -> None:
    """What an attacker with write access to the file (and no data key) does."""
    with sqlite3.connect(db_path) as raw:
        raw.execute(sql, params)


def store_provider(db_path: Path, **overrides: object) -> ProviderStore:
    providers = ProviderStore(Database(db_path), DataCipher(KEY))
    values: dict[str, object] = {
        "provider_id": "notes",
        "tenant_id": TENANT,
        "server_url": "http://127.0.0.1:9/mcp",
        "static_headers": {"X-Api-Key": API_KEY},
    }
    values.update(overrides)
    providers.create(MCPProvider(**values))  # type: ignore[arg-type]
    return providers


# --- providers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("server_url", "http://127.0.0.1:10/mcp"),
        ("token_header", "X-Other"),
        ("identity_mode", "off"),
        ("name", "Renamed"),
        ("enterprise_enabled", 0),
        ("allow_insecure_http", 1),
        ("provider_id", "moved"),
    ],
)
def test_a_provider_field_edited_in_the_file_is_refused(db_path: Path, column: str, value: object) -> None:
    providers = store_provider(db_path, identity_mode="idp_token")
    edit(db_path, f"UPDATE mcp_providers SET {column} = ?", value)
    provider_id = "moved" if column == "provider_id" else "notes"
    with pytest.raises(TamperedRecordError, match="does not match its seal") as caught:
        providers.get(TENANT, provider_id)
    assert isinstance(caught.value, DecryptionError)
    assert API_KEY not in str(caught.value)
    with pytest.raises(TamperedRecordError):
        providers.list_providers(TENANT)
    with pytest.raises(TamperedRecordError):
        providers.update(TENANT, provider_id, name="anything")


def test_an_edit_through_the_store_still_reads_back(db_path: Path) -> None:
    providers = store_provider(db_path)
    providers.update(TENANT, "notes", server_url="http://127.0.0.1:10/mcp", token_header="X-Key")
    reopened = ProviderStore(Database(db_path), DataCipher(KEY)).get(TENANT, "notes")
    assert reopened is not None and reopened.server_url == "http://127.0.0.1:10/mcp"
    assert dict(reopened.static_headers) == {"X-Api-Key": API_KEY}


async def test_a_server_url_changed_in_the_file_sends_the_stored_key_nowhere(
    db_path: Path, stack: Stack, other_host: tuple[str, RequestLog], anyio_backend: str
) -> None:
    """The audit's finding: today the stored API key went to whatever host the file named."""
    other_url, other_log = other_host
    providers = store_provider(db_path, server_url=stack.server_url)
    edit(db_path, "UPDATE mcp_providers SET server_url = ?", other_url + "/mcp")
    runtime = MCPToolRuntime()

    async def call_as_a_host_does() -> None:
        provider = providers.get(TENANT, "notes")
        assert provider is not None
        await runtime.invoke(provider, "whoami", {}, tenant_id=TENANT, user_id=None)

    with pytest.raises(TamperedRecordError):
        await call_as_a_host_does()
    assert other_log.since(0) == []


# --- end-user credentials -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("server_url", "http://127.0.0.1:10/mcp"),
        ("provider", "other-provider"),
        ("end_user_id", "mallory"),
        ("tenant_id", "globex"),
        ("expires_at", -1),
        ("credential_type", "oauth2"),
        ("name", "Renamed"),
    ],
)
def test_a_credential_field_edited_in_the_file_is_refused(db_path: Path, column: str, value: object) -> None:
    credentials = EndUserCredentialStore(Database(db_path), DataCipher(KEY))
    stored = credentials.create(
        TENANT,
        "eu-1",
        "notes",
        {"api_key": USER_KEY, "access_token": USER_KEY},
        server_url="http://127.0.0.1:9/mcp",
        expires_at=4_000_000_000,
    )
    edit(db_path, f"UPDATE end_user_credentials SET {column} = ?", value)
    with pytest.raises(TamperedRecordError, match="does not match its seal") as caught:
        credentials.get(stored.id)
    assert USER_KEY not in str(caught.value)


async def test_a_credential_goes_only_to_the_url_it_was_connected_for(
    db_path: Path, stack: Stack, other_host: tuple[str, RequestLog], anyio_backend: str
) -> None:
    """Even a legitimate change of the provider's URL does not carry users' keys to the new host."""
    other_url, other_log = other_host
    database = Database(db_path)
    providers = ProviderStore(database, DataCipher(KEY))
    credentials = EndUserCredentialStore(database, DataCipher(KEY))
    provider = providers.create(
        MCPProvider(
            provider_id="notes",
            tenant_id=TENANT,
            server_url=stack.server_url,
            identity_mode=IdentityMode.END_USER_CREDENTIAL,
            token_header="X-Api-Key",
        )
    )
    credentials.create(TENANT, "eu-1", "notes", {"api_key": USER_KEY}, server_url=provider.server_url)
    moved = providers.update(TENANT, "notes", server_url=other_url + "/mcp")
    runtime = MCPToolRuntime(credentials=credentials)
    with pytest.raises(MCPCredentialRequiredError) as caught:
        await runtime.invoke(moved, "whoami", {}, tenant_id=TENANT, user_id="eu-1")
    assert caught.value.reason == "server_changed"
    assert other_log.since(0) == []


# --- databases written before the seal covered every field ----------------------------------------

_V1_PROVIDERS = """
CREATE TABLE mcp_providers (
    tenant_id TEXT NOT NULL, provider_id TEXT NOT NULL, name TEXT NOT NULL, server_url TEXT NOT NULL,
    identity_mode TEXT NOT NULL, encrypted_static_headers BLOB NOT NULL, token_header TEXT NOT NULL,
    enterprise_enabled INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, provider_id)
)
"""
_V1_CREDENTIALS = """
CREATE TABLE end_user_credentials (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, end_user_id TEXT NOT NULL, provider TEXT NOT NULL,
    name TEXT NOT NULL, encrypted_credentials BLOB NOT NULL, credential_type TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at INTEGER NOT NULL DEFAULT -1
)
"""


def write_v1_database(db_path: Path, *providers: tuple[str, str]) -> None:
    """Rows exactly as the previous client_runtime sealed them: to (tenant, id) and owner only."""
    cipher = DataCipher(KEY)
    now = "2025-01-01T00:00:00+00:00"
    with sqlite3.connect(db_path) as raw:
        raw.execute(_V1_PROVIDERS)
        raw.execute(_V1_CREDENTIALS)
        for provider_id, url in providers:
            headers = cipher.encrypt(
                json.dumps({"X-Api-Key": API_KEY}).encode(),
                associated_data=json.dumps(["mcp_providers", TENANT, provider_id]).encode(),
            )
            raw.execute(
                "INSERT INTO mcp_providers VALUES"
                " (?, ?, '', ?, 'end_user_credential', ?, 'X-Api-Key', 1, 0, 0)",
                (TENANT, provider_id, url, headers),
            )
        for credential_id, provider_id in (("c-1", "notes"), ("c-orphan", "gone")):
            sealed = cipher.encrypt(
                json.dumps({"api_key": USER_KEY}).encode(),
                associated_data=json.dumps(
                    ["end_user_credentials", credential_id, TENANT, "eu-1", provider_id, "api-key"]
                ).encode(),
            )
            raw.execute(
                "INSERT INTO end_user_credentials VALUES"
                " (?, ?, 'eu-1', ?, 'API KEY 1', ?, 'api-key', ?, ?, -1)",
                (credential_id, TENANT, provider_id, sealed, now, now),
            )


def test_rows_of_an_older_runtime_are_refused_until_resealed(db_path: Path) -> None:
    write_v1_database(db_path, ("notes", "http://127.0.0.1:9/mcp"))
    database = Database(db_path)
    with pytest.raises(LegacyRecordsError, match="reseal_legacy_rows") as caught:
        ProviderStore(database, DataCipher(KEY))
    assert "mcp_providers holds 1 row(s)" in str(caught.value)
    with pytest.raises(LegacyRecordsError, match="reseal_legacy_rows"):
        EndUserCredentialStore(database, DataCipher(KEY))


def test_reseal_binds_what_the_file_holds_now_then_refuses_a_downgrade(db_path: Path) -> None:
    write_v1_database(db_path, ("notes", "http://127.0.0.1:9/mcp"), ("wiki", "http://wiki.internal/mcp"))
    database = Database(db_path)
    assert reseal_legacy_rows(database, DataCipher(KEY)) == 4
    assert reseal_legacy_rows(database, DataCipher(KEY)) == 0

    providers = ProviderStore(database, DataCipher(KEY))
    notes = providers.get(TENANT, "notes")
    assert notes is not None and dict(notes.static_headers) == {"X-Api-Key": API_KEY}
    wiki = providers.get(TENANT, "wiki")
    # Plain http off loopback worked before; after the upgrade it is an explicit, sealed opt-in.
    assert wiki is not None and wiki.allow_insecure_http and not notes.allow_insecure_http
    assert notes.session_reuse and wiki.session_reuse  # the default, for rows older than the option
    credentials = EndUserCredentialStore(database, DataCipher(KEY))
    assert credentials.get("c-1").server_url == notes.server_url
    assert credentials.usable(TENANT, "eu-1", "notes", server_url=notes.server_url).secret == USER_KEY
    assert credentials.get("c-orphan").server_url == ""

    edit(
        db_path, "UPDATE mcp_providers SET server_url = 'http://127.0.0.1:10/mcp' WHERE provider_id = 'notes'"
    )
    with pytest.raises(TamperedRecordError):
        providers.get(TENANT, "notes")
    # Forgetting the upgrade happened (say, to swap in an old copy of the rows) is refused, not re-blessed.
    edit(db_path, "DELETE FROM client_runtime_schema")
    with pytest.raises(LegacyRecordsError):
        ProviderStore(Database(db_path), DataCipher(KEY))


def test_reseal_is_all_or_nothing_under_a_wrong_key(db_path: Path) -> None:
    write_v1_database(db_path, ("notes", "http://127.0.0.1:9/mcp"))
    database = Database(db_path)
    with pytest.raises(TamperedRecordError):
        reseal_legacy_rows(database, DataCipher(bytes(32)))
    with pytest.raises(LegacyRecordsError):
        ProviderStore(database, DataCipher(KEY))


def test_an_empty_older_table_is_upgraded_in_place(db_path: Path) -> None:
    write_v1_database(db_path)
    edit(db_path, "DELETE FROM end_user_credentials")
    database = Database(db_path)
    credentials = EndUserCredentialStore(database, DataCipher(KEY))
    stored = credentials.create(
        TENANT, "eu-1", "notes", {"api_key": USER_KEY}, server_url="http://127.0.0.1:9/mcp"
    )
    assert credentials.get(stored.id).secret == USER_KEY


def test_a_table_from_a_newer_runtime_is_refused(db_path: Path) -> None:
    store_provider(db_path)
    edit(db_path, "UPDATE client_runtime_schema SET version = 99 WHERE name = 'mcp_providers'")
    with pytest.raises(SchemaVersionError, match="newer client_runtime"):
        ProviderStore(Database(db_path), DataCipher(KEY))
