"""`mcp-idfwd issuer` as a user runs it: a real process on loopback."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from issuer_support import AUDIENCE

from fake_enterprise import AdminClient
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
        while "db" not in printed:
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
        url, secret = printed["issuer"], printed["secret"]
        assert url.startswith("http://127.0.0.1:")
        with AdminClient(url, secret) as admin:
            assert admin.discovery()["issuer"] == url
            admin.create_user("acme", "alice")
            admin.grant("acme", "alice")
            answer = admin.issue_token("acme", "alice", AUDIENCE)
            assert admin.jwks()["keys"][0]["alg"] == "ES256"
        assert answer["expires_at"] > 0
    assert (tmp_path / "cli.db.key").exists()


def test_a_given_secret_is_used_and_not_printed() -> None:
    with _issuer_process("--secret", "given-secret-123") as printed:
        assert "given-secret-123" not in printed["secret"]
        with AdminClient(printed["issuer"], "given-secret-123") as admin:
            assert admin.rotate_keys("EdDSA")


@pytest.mark.parametrize(
    "args", [["--host", "0.0.0.0"], ["--alg", "HS256"], ["--token-ttl", "0"], ["--port", "70000"]]
)
def test_bad_flags_exit_with_usage(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["issuer", *args])
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err
