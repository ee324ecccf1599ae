"""`mcp-idfwd issuer` as a user runs it: a real process on loopback."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from issuer_support import AUDIENCE

from fake_enterprise import AdminAPIError, AdminClient
from harness.cli import build_parser


@contextmanager
def _issuer_process(*args: str) -> Iterator[dict[str, str]]:
    """Run the CLI; yield the `name: value` lines it prints before serving."""
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "issuer", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # A process that never prints would block readline(): kill it after a generous while.
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        printed: dict[str, str] = {}
        assert process.stdout is not None
        while "db" not in printed:  # the last line before serving
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"issuer exited early: {process.communicate(timeout=10)[1]}")
            name, _, value = line.partition(":")
            printed[name.strip()] = value.strip()
        yield printed
    finally:
        watchdog.cancel()
        process.terminate()
        process.communicate(timeout=10)


def test_the_cli_serves_and_prints_its_url_and_generated_secret(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    with _issuer_process("--db", str(db), "--alg", "ES256", "--token-ttl", "42") as printed:
        url, secret, admin_secret = printed["issuer"], printed["secret"], printed["admin secret"]
        assert url.startswith("http://127.0.0.1:")
        assert re.fullmatch("[0-9a-f]{48}", secret) and re.fullmatch("[0-9a-f]{48}", admin_secret)
        assert secret != admin_secret
        with AdminClient(url, admin_secret, inner_secret=secret) as admin:
            assert admin.discovery()["issuer"] == url
            admin.create_user("acme", "alice")
            admin.grant("acme", "alice")
            answer = admin.issue_token("acme", "alice", AUDIENCE)
            assert admin.jwks()["keys"][0]["alg"] == "ES256"
        assert answer["expires_at"] > 0
    assert (tmp_path / "cli.db.key").exists()


def test_given_secrets_are_used_and_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_IDFWD_ADMIN_SECRET", "given-admin-secret-456")
    with _issuer_process("--secret=given-secret-123") as printed:
        assert printed["secret"] == printed["admin secret"] == "(as given)"
        with AdminClient(
            printed["issuer"], "given-admin-secret-456", inner_secret="given-secret-123"
        ) as admin:
            assert admin.rotate_keys("EdDSA")
            admin.create_user("acme", "alice")
            admin.grant("acme", "alice")
            assert admin.issue_token("acme", "alice", AUDIENCE)["token"]
        with AdminClient(printed["issuer"], "given-secret-123") as inner_only, pytest.raises(AdminAPIError):
            inner_only.rotate_keys()


def test_one_secret_for_both_jobs_is_refused_in_one_line() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "harness", "issuer", "--port", "0", "--secret=same", "--admin-secret=same"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    (line,) = completed.stderr.splitlines()
    assert (
        line == "mcp-idfwd issuer: admin_secret must differ from secret (the inner secret every host holds)"
    )


@pytest.mark.parametrize(
    "args", [["--host", "0.0.0.0"], ["--alg", "HS256"], ["--token-ttl", "0"], ["--port", "70000"]]
)
def test_bad_flags_exit_with_usage(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["issuer", *args])
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err
