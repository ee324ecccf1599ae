"""`mcp-idfwd tools`, and how `call` and `tools` tell a server that answered 503 from one that is gone."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import fake_mcp_server
from harness.cli import main
from harness.servers import bind_loopback, serve_in_thread, socket_url
from harness.stack import LocalStack, StackUser

# Nothing listens on the discard port of loopback.
UNREACHABLE = "http://127.0.0.1:9/mcp"


def _argv(command: str, stack: LocalStack, user: StackUser, server: str, *extra: str) -> list[str]:
    return [command, f"--issuer={stack.issuer_url}", f"--secret={stack.secret}", "--tenant=acme",
            f"--server={server}", f"--user={user.user_id}", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def keyless_server(local_stack: LocalStack) -> Iterator[str]:
    """An MCP server that trusts the stack's issuer but can never fetch its keys: it answers 503."""
    sock = bind_loopback()
    resource_url = socket_url(sock) + "/mcp"
    settings = fake_mcp_server.ServerSettings(
        issuer_url=local_stack.issuer_url, resource_url=resource_url, jwks_url="http://127.0.0.1:9/jwks.json"
    )
    with serve_in_thread(fake_mcp_server.create_app(settings), sock):
        yield resource_url


def test_tools_lists_the_servers_tools_for_the_user(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    user = local_stack.new_user("acme", prefix="lister")
    assert main(_argv("tools", local_stack, user, local_stack.server_url)) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert {"whoami", "add_note", "list_notes", "echo"} <= set(names)
    whoami = next(line for line in lines if line.startswith("whoami"))
    assert "Return the identity the server verified" in whoami


def test_tools_json_prints_the_tool_descriptions(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    user = local_stack.new_user("acme", prefix="lister")
    assert main(_argv("tools", local_stack, user, local_stack.server_url, "--json")) == 0
    tools = {tool["name"]: tool for tool in json.loads(capsys.readouterr().out)}
    assert tools["echo"]["inputSchema"]["required"] == ["text"]


def test_tools_reports_a_refused_identity_like_call(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    no_grant = local_stack.new_user("acme", prefix="nosso", grant=False)
    assert main(_argv("tools", local_stack, no_grant, local_stack.server_url)) == 1
    err = capsys.readouterr().err
    assert err.startswith("tools: MCPNoRefreshTokenError")
    assert local_stack.secret not in err


@pytest.mark.parametrize("command", ["call", "tools"])
def test_a_server_without_keys_is_not_called_unreachable(
    command: str, local_stack: LocalStack, keyless_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    user = local_stack.new_user("acme", prefix="keyless")
    extra = ["--tool=whoami"] if command == "call" else []
    assert main(_argv(command, local_stack, user, keyless_server, *extra)) == 1
    first, hint = capsys.readouterr().err.splitlines()
    assert first == (
        f"{command}: {keyless_server} is up but cannot verify tokens right now (HTTP 503: it has no"
        " signing keys from its issuer; check that the issuer runs and that the server's --issuer names it)"
    )
    assert (
        hint == "  a host would tell its user: The tool's server is temporarily unavailable."
        " Please try again in a moment."
    )


@pytest.mark.parametrize("command", ["call", "tools"])
def test_an_unreachable_server_is_called_unreachable(
    command: str, local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    user = local_stack.new_user("acme", prefix="nowhere")
    extra = ["--tool=whoami"] if command == "call" else []
    assert main(_argv(command, local_stack, user, UNREACHABLE, *extra)) == 1
    first, hint = capsys.readouterr().err.splitlines()
    assert first.startswith(f"{command}: {UNREACHABLE} could not be reached or did not speak MCP: ")
    assert "503" not in first
    assert (
        hint
        == "  a host would tell its user: The tool's server could not be reached. Please try again later."
    )


def test_call_takes_the_issuer_with_or_without_its_trailing_slash(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    user = local_stack.new_user("acme", prefix="slash")
    for issuer in (local_stack.issuer_url, local_stack.issuer_url + "/"):
        argv = _argv("call", local_stack, user, local_stack.server_url, "--tool=whoami")
        argv[1] = f"--issuer={issuer}"
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["iss"] == local_stack.issuer_url


def test_call_explains_a_server_url_with_a_trailing_slash(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    user = local_stack.new_user("acme", prefix="slash")
    server = local_stack.server_url + "/"
    assert main(_argv("call", local_stack, user, server, "--tool=whoami")) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"call: {server} refused the token (HTTP 401): invalid_token (wrong audience); --server is the"
        " token's audience and must be the server's URL exactly: try it without the trailing slash"
    )
