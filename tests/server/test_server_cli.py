"""`mcp-idfwd server` starts the reference server on loopback, trusting the issuer it is given."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from server_support import JWKSHost, Keys, mint

from harness.cli import main
from harness.conformance import initialize_request


@pytest.fixture
def cli_server(jwks_host: JWKSHost) -> Iterator[str]:
    command = [sys.executable, "-m", "harness", "server", "--issuer", jwks_host.url, "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            first_line = process.stdout.readline()  # printed once the socket listens
            assert first_line.startswith("mcp server: "), process.stderr.read()
            yield first_line.removeprefix("mcp server: ").strip()
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_cli_server_verifies_tokens_from_the_issuer(cli_server: str, jwks_host: JWKSHost, keys: Keys) -> None:
    resource_url = cli_server
    assert resource_url.startswith("http://127.0.0.1:") and resource_url.endswith("/mcp")
    headers = {"Accept": "application/json, text/event-stream"}
    body = initialize_request("server-cli-test")
    assert httpx.post(resource_url, headers=headers, json=body, timeout=10).status_code == 401
    token = mint(keys.rsa, issuer=jwks_host.url, audience=resource_url)
    accepted = httpx.post(
        resource_url, headers={**headers, "Authorization": f"Bearer {token}"}, json=body, timeout=10
    )
    assert accepted.status_code == 200
    metadata_url = resource_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    assert httpx.get(metadata_url, timeout=10).json()["authorization_servers"] == [jwks_host.url]


@pytest.mark.parametrize(
    "argv",
    [
        ["server", "--issuer", "not-a-url", "--port", "0"],
        ["server", "--issuer", "http://127.0.0.1:1", "--resource-url", "http://127.0.0.1:2", "--port", "0"],
    ],
    ids=["bad-issuer", "resource-without-path"],
)
def test_cli_server_refuses_bad_settings(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "mcp-idfwd server:" in capsys.readouterr().err


def test_cli_server_refuses_plain_http_issuer_off_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--issuer", "http://idp.example", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert "allow_insecure_http" in error and len(error.strip().splitlines()) == 1


def test_cli_server_accepts_plain_http_issuer_when_allowed() -> None:
    command = [
        sys.executable, "-m", "harness", "server", "--issuer", "http://idp.example", "--port", "0",
        "--allow-insecure-http",
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            assert process.stdout.readline().startswith("mcp server: "), process.stderr.read()
        finally:
            process.terminate()
            process.wait(timeout=10)
