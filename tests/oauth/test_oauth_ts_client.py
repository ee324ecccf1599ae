"""The MCP TypeScript SDK's OAuth client signs in at the issuer and calls our MCP server as the user.

Runs when node and the test's npm packages (tests/oauth/ts: `npm ci --prefix tests/oauth/ts`) are
present; `.ci/run` installs them and sets MCP_IDFWD_REQUIRE_NODE=1, which turns a skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from oauth_support import RunningIssuer

TS_DIR = Path(__file__).parent / "ts"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (TS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        return "the TypeScript SDK is not installed (npm ci --prefix tests/oauth/ts)"
    return None


def test_typescript_sdk_client_signs_in_and_calls_whoami(
    module_issuer: RunningIssuer, mcp_server: str, tenant: str, alice_subject: str, alice: str
) -> None:
    missing = _missing()
    if missing is not None:
        if os.environ.get("MCP_IDFWD_REQUIRE_NODE") == "1":
            pytest.fail(f"the TypeScript client test must run here: {missing}")
        pytest.skip(missing)
    completed = subprocess.run(
        ["node", str(TS_DIR / "sign_in.mjs"), mcp_server, alice],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    assert answer["whoami"]["sub"] == alice_subject
    assert answer["whoami"]["preferred_username"] == "alice"
    assert answer["whoami"]["tenant_id"] == tenant
    assert answer["whoami"]["aud"] == mcp_server
    assert answer["iss"] == module_issuer.url
    assert answer["client_id"] and answer["has_refresh_token"]
