"""examples/forward_identity.py works as a host developer would run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from client_support import TENANT, Stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "forward_identity.py"


def run_example(stack: Stack, user: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MCP_IDFWD_ISSUER_SECRET": stack.secret}
    command = [sys.executable, str(EXAMPLE), "--issuer", stack.issuer_url, "--server", stack.server_url]
    command += ["--tenant", TENANT, "--user", user, *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_example_calls_whoami_as_the_user(stack: Stack) -> None:
    alice = stack.new_user("alice")
    done = run_example(stack, alice)
    assert done.returncode == 0, done.stderr
    assert stack.user_of(json.loads(done.stdout)["sub"]) == alice
    assert stack.secret not in done.stdout + done.stderr


def test_the_example_shows_what_to_tell_the_user(stack: Stack) -> None:
    carol = stack.new_user("carol", grant=False)
    done = run_example(stack, carol)
    assert done.returncode == 1
    assert "MCPNoRefreshTokenError" in done.stderr
    assert "show the user: Sign in with your company account" in done.stderr


def test_the_example_passes_tool_arguments_with_args_as_call_does(stack: Stack) -> None:
    alice = stack.new_user("alice")
    done = run_example(stack, alice, "--tool", "echo", "--args", '{"text": "hello"}')
    assert done.returncode == 0, done.stderr
    assert "hello" in done.stdout
    # The old spelling still works, unadvertised.
    done = run_example(stack, alice, "--tool", "echo", "--arguments", '{"text": "again"}')
    assert done.returncode == 0, done.stderr
    assert "again" in done.stdout


def test_the_example_takes_the_secret_from_the_flag_when_the_environment_has_none(stack: Stack) -> None:
    alice = stack.new_user("alice")
    env = {k: v for k, v in os.environ.items() if k != "MCP_IDFWD_ISSUER_SECRET"}
    command = [sys.executable, str(EXAMPLE), "--issuer", stack.issuer_url, "--server", stack.server_url]
    command += ["--tenant", TENANT, "--user", alice]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "set MCP_IDFWD_ISSUER_SECRET (or --secret)" in done.stderr
    command.append(f"--secret={stack.secret}")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def _options(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", help_text))


def test_the_example_spells_every_flag_as_call_does() -> None:
    example = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    call_help = [sys.executable, "-m", "harness", "call", "--help"]
    call = subprocess.run(call_help, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "--args" in _options(example)
    assert _options(example) - {"--help"} <= _options(call)
    # The alias is accepted by both and advertised by neither.
    assert "--arguments" not in _options(example) | _options(call)
