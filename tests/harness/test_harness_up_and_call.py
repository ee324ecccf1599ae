import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from harness.cli import build_parser, main
from harness.generated_secrets import new_secret
from harness.stack import LocalStack

UP = [sys.executable, "-m", "harness", "up", "--issuer-port", "0", "--server-port", "0"]


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Stdout lines of `process`, readable with a timeout (None at end of output)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _banner(lines: queue.Queue[str | None]) -> list[str]:
    banner: list[str] = []
    while True:
        line = lines.get(timeout=30)
        assert line is not None, f"up exited early after: {banner}"
        banner.append(line)
        if line.startswith("  mcp-idfwd conformance"):
            return banner


@pytest.fixture
def up() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    process = subprocess.Popen(UP, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process, _banner(_lines(process))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _field(banner: list[str], label: str) -> str:
    return next(line.strip()[len(label) :].split()[0] for line in banner if line.strip().startswith(label))


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_up_serves_prints_working_examples_and_stops_on_signal(
    up: tuple[subprocess.Popen[str], list[str]], stop_signal: signal.Signals
) -> None:
    process, banner = up
    issuer_url, server_url = _field(banner, "issuer"), _field(banner, "MCP server")
    secret = _field(banner, "secret")
    assert server_url.endswith("/mcp")
    assert httpx.get(f"{issuer_url}/.well-known/openid-configuration").json()["issuer"] == issuer_url

    # The curl example, sent as written (parsed by shlex, posted with httpx).
    curl = shlex.split(next(line for line in banner if line.strip().startswith("curl ")))
    headers = dict(curl[i + 1].split(": ", 1) for i, word in enumerate(curl) if word == "-H")
    body = json.loads(curl[curl.index("-d") + 1])
    issued = httpx.post(curl[curl.index("-X") + 2], headers=headers, content=json.dumps(body))
    assert issued.status_code == 200 and issued.json()["token_type"] == "Bearer"
    assert headers["Enterprise-Api-Secret-Key"] == secret

    # The `call` example, run as written.
    call = shlex.split(next(line for line in banner if line.strip().startswith("mcp-idfwd call")))
    command = [sys.executable, "-m", "harness", *call[1:]]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    identity = json.loads(completed.stdout)
    assert (identity["email"], identity["tenant_id"]) == ("alice@example.com", "acme")
    assert re.fullmatch("[0-9a-f]{32}", identity["sub"])

    process.send_signal(stop_signal)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "stopping" in err and "Traceback" not in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{issuer_url}/.well-known/jwks.json")


def _call(stack: LocalStack, user: str, tool: str, *extra: str) -> list[str]:
    return ["call", "--issuer", stack.issuer_url, "--secret", stack.secret, "--tenant", "acme",
            "--server", stack.server_url, "--user", user, "--tool", tool, *extra]  # fmt: skip


def test_call_prints_the_tool_result(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    user = local_stack.new_user("acme", prefix="caller")
    assert main(_call(local_stack, user.user_id, "echo", "--args", '{"text": "hello"}')) == 0
    assert "hello" in capsys.readouterr().out
    assert main(_call(local_stack, user.user_id, "whoami")) == 0
    assert json.loads(capsys.readouterr().out)["sub"] == user.sub


def test_call_reports_the_mapped_error(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    no_grant = local_stack.new_user("acme", prefix="nosso", grant=False)
    assert main(_call(local_stack, no_grant.user_id, "whoami")) == 1
    err = capsys.readouterr().err
    assert "MCPNoRefreshTokenError" in err
    assert "a host would tell its user: Sign in with your company account (SSO)" in err

    revoked = local_stack.new_user("acme", prefix="revoked")
    local_stack.admin.revoke("acme", revoked.user_id)
    assert main(_call(local_stack, revoked.user_id, "whoami")) == 1
    assert "MCPIdentityRefreshError" in capsys.readouterr().err


def test_call_with_a_wrong_secret_is_a_configuration_error(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _call(local_stack, "alice", "whoami")
    argv[argv.index("--secret") + 1] = "wrong-secret"
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "MCPIssuerConfigError" in err and "wrong-secret" not in err


@pytest.mark.parametrize(
    ("args", "message"), [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object, got list")]
)
def test_call_rejects_bad_args_json_clearly(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], args: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(_call(local_stack, "alice", "echo", "--args", args))
    assert exited.value.code == 2
    assert f"argument --args: {message}" in capsys.readouterr().err


def test_generated_secrets_never_read_as_options() -> None:
    generated = {new_secret() for _ in range(5000)}
    assert len(generated) == 5000
    assert all(re.fullmatch("[0-9a-f]{48}", secret) for secret in generated)
    stack = LocalStack()
    assert not stack.secret.startswith("-") and not stack.admin_secret.startswith("-")


def test_printed_commands_survive_secrets_that_start_with_a_dash() -> None:
    # The CI flake: `--secret -xyz` does not parse. Given secrets may start with `-`; the printed
    # lines must still work as pasted.
    inner, admin = "-inner-secret with 'quote", "--admin-secret-lookalike"
    env = {**os.environ, "MCP_IDFWD_ISSUER_SECRET": inner, "MCP_IDFWD_ADMIN_SECRET": admin}
    process = subprocess.Popen(UP, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = _banner(_lines(process))
        call = shlex.split(next(line for line in banner if line.strip().startswith("mcp-idfwd call")))
        parsed = build_parser().parse_args(call[1:])
        assert (parsed.command, parsed.secret, parsed.user) == ("call", inner, "alice")
        completed = subprocess.run(
            [sys.executable, "-m", "harness", *call[1:]], capture_output=True, text=True, timeout=60
        )
        assert completed.returncode == 0, completed.stderr
        conformance = shlex.split(
            next(line for line in banner if line.strip().startswith("mcp-idfwd conformance"))
        )
        assert f"--admin-secret={admin}" in conformance
        assert all(word.startswith("--") and "=" in word for word in conformance[2:])
    finally:
        process.kill()
        process.wait(timeout=10)
