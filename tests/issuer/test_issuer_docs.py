"""docs/issuer.md's examples do what they say: the Python one issues alice a token, and the curl
one, against the issuer the doc starts (on a free port instead of 9000), creates carol, signs her in
and gets a token the published JWKS verifies. (tests/docs runs every snippet; this checks results.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import jwt
import pytest

ISSUER_DOC = Path(__file__).resolve().parents[2] / "docs" / "issuer.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", ISSUER_DOC.read_text(encoding="utf-8"), re.S)


def test_the_python_example_runs() -> None:
    (example,) = _blocks("python")
    namespace: dict[str, object] = {}
    exec(compile(example, "docs/issuer.md (python example)", "exec"), namespace)
    claims = jwt.decode(str(namespace["token"]), options={"verify_signature": False})
    assert (claims["preferred_username"], claims["aud"]) == ("alice", "http://127.0.0.1:8000/mcp")
    assert claims["sub"] != "alice"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_example_runs(tmp_path: Path) -> None:
    server_block, client_block = _blocks("bash")
    (command,) = server_block.strip().splitlines()
    words = command.split()
    env = dict(word.split("=", 1) for word in words if re.fullmatch(r"[A-Z_]+=\S+", word))
    assert set(env) == {"MCP_IDFWD_ISSUER_SECRET", "MCP_IDFWD_ADMIN_SECRET"}
    cli = " ".join(words[len(env) :])
    assert cli.startswith("mcp-idfwd issuer --port 9000")
    args = cli.split()[1:]
    args[args.index("9000")] = "0"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        url = process.stdout.readline().partition(":")[2].strip()
        assert url.startswith("http://127.0.0.1:"), "the issuer did not start"
        # The block keeps ISSUER, SECRET and ADMIN_SECRET when set; only the port differs from the doc.
        result = subprocess.run(
            ["bash", "-e"],
            input=client_block,
            env={**os.environ, "ISSUER": url, "SECRET": env["MCP_IDFWD_ISSUER_SECRET"]},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        watchdog.cancel()
        process.terminate()
        process.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    # Each curl prints one JSON document with no newline in between.
    documents = []
    decoder = json.JSONDecoder()
    rest = result.stdout.strip()
    while rest:
        document, end = decoder.raw_decode(rest)
        documents.append(document)
        rest = rest[end:].lstrip()
    user, grant, issued, jwks = documents
    assert user["user_id"] == grant["user_id"] == "carol"
    assert issued["token_type"] == "Bearer"
    kid = jwt.get_unverified_header(issued["token"])["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid].key
    claims = jwt.decode(issued["token"], key, algorithms=["RS256"], audience="http://127.0.0.1:8000/mcp")
    assert claims["iss"] == url
