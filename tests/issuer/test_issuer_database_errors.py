"""What an operator sees when the database cannot be used: one line naming the path and the way out.

A path that cannot hold a database, a database whose key file was deleted, and a second issuer
on a database another one holds (its `<db>.lock`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from issuer_support import ADMIN_SECRET, SECRET

from fake_enterprise import (
    DATA_KEY_ENV,
    DatabaseLock,
    DatabaseLockedError,
    DatabasePathError,
    DataKeyError,
    IssuerSettings,
    create_app,
)
from harness.cli import main


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


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may create files in: chmod for a normal user; root ignores modes, so for
    root the directory is made immutable (chattr +i)."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: no directory is read-only")
    try:
        yield directory
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err.rstrip("\n")


@pytest.mark.parametrize("command", ["up", "issuer"])
def test_a_missing_directory_is_named(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "missing" / "issuer.db"
    ports = ["--issuer-port=0", "--server-port=0"] if command == "up" else ["--port=0"]
    prefix = "mcp-idfwd up: cannot start" if command == "up" else "mcp-idfwd issuer"
    assert _one_line_error([command, *ports, f"--db={db}"], capsys) == (
        f"{prefix}: the directory {db.parent} of database {db} does not exist; create it first"
    )


def test_a_directory_given_as_the_database_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _one_line_error(["up", "--issuer-port=0", "--server-port=0", f"--db={tmp_path}"], capsys) == (
        f"mcp-idfwd up: cannot start: {tmp_path} is a directory; the database is a file in it,"
        f" e.g. {tmp_path / 'issuer.db'}"
    )


def test_a_read_only_directory_is_named(read_only_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = read_only_dir / "issuer.db"
    error = _one_line_error(["up", "--issuer-port=0", "--server-port=0", f"--db={db}"], capsys)
    assert error.startswith(f"mcp-idfwd up: cannot start: cannot create database {db}: ")
    assert error.endswith(
        "its directory must be writable (it also holds the database's WAL, key and lock files)"
    )
    assert list(read_only_dir.iterdir()) == []


def test_a_deleted_key_file_says_the_data_cannot_be_opened_and_how_to_start_fresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "issuer.db"
    create_app(_settings(str(db))).state.issuer.close()
    key_file = Path(f"{db}.key")
    key_file.unlink()
    assert _one_line_error(["issuer", "--port=0", f"--db={db}"], capsys) == (
        f"mcp-idfwd issuer: database {db} exists but its data key file {key_file} is gone; the grants and"
        f" signing keys in it cannot be opened without that key. Restore {key_file} (or set"
        f" ${DATA_KEY_ENV}), or start fresh: move {db} (and its -wal and -shm files) away"
    )
    # No new key was made up: putting the old one back still works.
    assert not key_file.exists()


def test_a_new_database_still_gets_its_key_file(tmp_path: Path) -> None:
    db = tmp_path / "issuer.db"
    create_app(_settings(str(db))).state.issuer.close()
    assert Path(f"{db}.key").exists()


def test_a_second_issuer_on_a_held_database_is_refused_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "issuer.db"
    app = create_app(_settings(str(db), exclusive_db=True))
    try:
        with pytest.raises(DatabaseLockedError):
            create_app(_settings(str(db), exclusive_db=True))
        assert _one_line_error(["issuer", "--port=0", f"--db={db}"], capsys) == (
            f"mcp-idfwd issuer: database {db} is in use by another issuer (process {os.getpid()} holds"
            f" {db}.lock); stop it, or give this issuer a database of its own"
        )
        error = _one_line_error(["up", "--issuer-port=0", "--server-port=0", f"--db={db}"], capsys)
        assert error.startswith(f"mcp-idfwd up: cannot start: database {db} is in use by another issuer")
    finally:
        app.state.issuer.close()
        app.state.db_lock.release()


def test_the_lock_is_the_processs_and_goes_with_it(tmp_path: Path) -> None:
    db = str(tmp_path / "issuer.db")
    code = "import sys; from fake_enterprise import DatabaseLock; DatabaseLock.acquire(sys.argv[1]);"
    code += " print('locked', flush=True); input()"
    with subprocess.Popen(
        [sys.executable, "-c", code, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            with pytest.raises(DatabaseLockedError, match=f"process {holder.pid} holds"):
                DatabaseLock.acquire(db)
        finally:
            holder.kill()
            holder.wait(timeout=10)
    # Killed, not released: the kernel dropped its lock all the same.
    lock = DatabaseLock.acquire(db)
    assert lock is not None
    lock.release()


def test_without_exclusive_db_the_caller_may_hold_the_lock_itself(tmp_path: Path) -> None:
    """A supervisor of several workers on one database takes the lock once, in its own process."""
    db = str(tmp_path / "issuer.db")
    with DatabaseLock.acquire(db):  # type: ignore[union-attr]
        first = create_app(_settings(db))
        second = create_app(_settings(db))
        first.state.issuer.close()
        second.state.issuer.close()
        with pytest.raises(DatabaseLockedError):
            create_app(_settings(db, exclusive_db=True))
    # Released: the next exclusive issuer gets it.
    create_app(_settings(db, exclusive_db=True)).state.issuer.close()


def test_an_in_memory_database_takes_no_lock() -> None:
    assert DatabaseLock.acquire(":memory:") is None
    create_app(_settings(":memory:", exclusive_db=True)).state.issuer.close()
    create_app(_settings(":memory:", exclusive_db=True)).state.issuer.close()


def test_a_path_error_is_a_named_exception(tmp_path: Path) -> None:
    with pytest.raises(DatabasePathError, match="is a directory"):
        create_app(_settings(str(tmp_path)))
    with pytest.raises(DataKeyError):
        db = tmp_path / "x.db"
        create_app(_settings(str(db))).state.issuer.close()
        Path(f"{db}.key").unlink()
        create_app(_settings(str(db)))
