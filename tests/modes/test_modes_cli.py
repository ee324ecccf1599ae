"""`mcp-idfwd call --mode token_exchange|id_jag` against the real stack; missing options are one line."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.stack import LocalStack


def _argv(stack: LocalStack, mode: str, user: str, server: str) -> list[str]:
    host = stack.host_client()
    return [
        "call",
        f"--mode={mode}",
        f"--issuer={stack.issuer_url}",
        "--tenant=acme",
        f"--server={server}",
        f"--user={user}",
        "--tool=whoami",
        f"--client-id={host.client_id}",
        f"--client-secret={host.client_secret}",
    ]


def test_call_in_token_exchange_mode(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    user = stack.new_user(prefix="cli-tx")
    assert main(_argv(stack, "token_exchange", user.user_id, stack.server_url)) == 0
    seen = json.loads(capsys.readouterr().out)
    assert seen["sub"] == user.sub and seen["aud"] == stack.server_url


def test_call_in_id_jag_mode(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    user = stack.new_user(prefix="cli-jag")
    stack.allow_id_jag()
    client = stack.id_jag_client
    argv = [*_argv(stack, "id_jag", user.user_id, stack.id_jag_server_url)]
    argv.append(f"--as-client={client.client_id}:{client.client_secret}")
    assert main(argv) == 0
    seen = json.loads(capsys.readouterr().out)
    assert seen["sub"] == user.sub and seen["iss"] == client.issuer


def test_call_in_id_jag_mode_with_a_wrong_as_secret(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    user = stack.new_user(prefix="cli-jag-bad")
    stack.allow_id_jag()
    argv = [
        *_argv(stack, "id_jag", user.user_id, stack.id_jag_server_url),
        "--as-client=mcp-idfwd-host:wrong-one",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "MCPIssuerConfigError" in err and "invalid_client" in err and "wrong-one" not in err


@pytest.mark.parametrize(
    ("mode", "drop", "message"),
    [
        ("idp_token", "--client-id", "--secret"),
        ("token_exchange", "--client-id", "--client-id and --client-secret"),
        ("id_jag", None, "--as-client ID:SECRET"),
    ],
)
def test_missing_options_for_the_mode_are_one_line(
    stack: LocalStack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    drop: str | None,
    message: str,
) -> None:
    for name in ("MCP_IDFWD_ISSUER_SECRET", "MCP_IDFWD_CLIENT_SECRET", "MCP_IDFWD_AS_CLIENT"):
        monkeypatch.delenv(name, raising=False)
    argv = [
        arg
        for arg in _argv(stack, mode, "alice", stack.server_url)
        if drop is None or not arg.startswith(drop)
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
