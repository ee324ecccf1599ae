"""examples/forward_identity.py works as a host developer would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from client_support import TENANT, Stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "forward_identity.py"


def run_example(stack: Stack, user: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MCP_IDFWD_ISSUER_SECRET": stack.secret}
    command = [sys.executable, str(EXAMPLE), "--issuer", stack.issuer_url, "--server", stack.server_url]
    command += ["--tenant", TENANT, "--user", user]
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
