"""`mcp-idfwd server` starts the reference server on loopback, trusting the issuer it is given."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from server_support import JWKSHost, Keys, mint

from harness.cli import main
from harness.conformance import initialize_request
from harness.servers import serve_in_thread, socket_url


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
    # idp.example cannot be reached from here: --skip-issuer-check starts the server regardless.
    command = [
        sys.executable, "-m", "harness", "server", "--issuer", "http://idp.example", "--port", "0",
        "--allow-insecure-http", "--skip-issuer-check",
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            assert process.stdout.readline().startswith("mcp server: "), process.stderr.read()
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_cli_server_refuses_to_start_when_the_issuer_cannot_be_reached(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["server", "--issuer", "http://127.0.0.1:9", "--port", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "mcp-idfwd server: the issuer is not available: cannot reach"
        " http://127.0.0.1:9/.well-known/openid-configuration (ConnectError: All connection attempts"
        " failed); start it first, or pass --wait-for-issuer SECONDS\n"
    )


def test_cli_server_names_the_expected_and_the_actual_issuer(
    jwks_host: JWKSHost, capsys: pytest.CaptureFixture[str]
) -> None:
    jwks_host.discovery_issuer = "http://127.0.0.1:1/other"
    assert main(["server", "--issuer", jwks_host.url, "--port", "0", "--wait-for-issuer", "30"]) == 1
    # A wrong issuer is not waited for: waiting cannot make it right.
    assert capsys.readouterr().err == (
        f"mcp-idfwd server: the issuer check failed: the discovery document at {jwks_host.url}"
        f"/.well-known/openid-configuration names issuer 'http://127.0.0.1:1/other', not"
        f" {jwks_host.url!r} (the issuer URL must be what the issuer puts in iss)\n"
    )


def test_cli_server_reports_an_issuer_url_that_is_not_an_issuer(
    jwks_host: JWKSHost, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["server", "--issuer", jwks_host.url + "/nested", "--port", "0"]) == 1
    assert capsys.readouterr().err == (
        f"mcp-idfwd server: the issuer check failed: HTTP 404 from {jwks_host.url}"
        "/nested/.well-known/openid-configuration\n"
    )


def test_cli_server_reports_an_issuer_without_keys(
    jwks_host: JWKSHost, capsys: pytest.CaptureFixture[str]
) -> None:
    jwks_host.keys = []
    assert main(["server", "--issuer", jwks_host.url, "--port", "0"]) == 1
    assert (
        capsys.readouterr().err
        == "mcp-idfwd server: the issuer check failed: JWKS has no usable signature keys\n"
    )


def test_cli_server_waits_for_an_issuer_that_comes_up(keys: Keys) -> None:
    host = JWKSHost()
    host.publish(keys.rsa)
    # Bound, not listening: connections are refused until the issuer starts.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host.url = socket_url(sock)
    command = [sys.executable, "-m", "harness", "server", f"--issuer={host.url}", "--port=0"]
    with subprocess.Popen(
        [*command, "--wait-for-issuer=60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            # The server says it waits once its first attempt is refused; only then does the issuer start.
            waiting = process.stderr.readline()
            assert waiting.startswith(
                f"mcp-idfwd server: waiting up to 60s for the issuer (cannot reach {host.url}/"
            )
            sock.listen(16)
            with serve_in_thread(host.app, sock):
                first_line = process.stdout.readline()
                assert first_line.startswith("mcp server: "), process.stderr.read()
                resource_url = first_line.removeprefix("mcp server: ").strip()
                token = mint(keys.rsa, issuer=host.url, audience=resource_url)
                headers = {
                    "Accept": "application/json, text/event-stream",
                    "Authorization": f"Bearer {token}",
                }
                body = initialize_request("server-cli-wait")
                assert httpx.post(resource_url, headers=headers, json=body, timeout=10).status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.mark.parametrize("published_with_slash", [False, True], ids=["iss-bare", "iss-with-slash"])
@pytest.mark.parametrize("configured_with_slash", [False, True], ids=["flag-bare", "flag-with-slash"])
def test_an_origin_issuer_is_the_same_with_or_without_its_trailing_slash(
    jwks_host: JWKSHost, keys: Keys, published_with_slash: bool, configured_with_slash: bool
) -> None:
    published = jwks_host.url + ("/" if published_with_slash else "")
    jwks_host.discovery_issuer = published
    configured = jwks_host.url + ("/" if configured_with_slash else "")
    command = [sys.executable, "-m", "harness", "server", f"--issuer={configured}", "--port=0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            first_line = process.stdout.readline()
            assert first_line.startswith("mcp server: "), process.stderr.read()
            resource_url = first_line.removeprefix("mcp server: ").strip()
            headers = {"Accept": "application/json, text/event-stream"}
            body = initialize_request("server-cli-slash")
            token = mint(keys.rsa, issuer=published, audience=resource_url)
            answer = httpx.post(
                resource_url, headers={**headers, "Authorization": f"Bearer {token}"}, json=body, timeout=10
            )
            assert answer.status_code == 200, answer.headers.get("www-authenticate")
            # Only the root slash is forgiven: another path is another issuer.
            token = mint(keys.rsa, issuer=jwks_host.url + "/x", audience=resource_url)
            answer = httpx.post(
                resource_url, headers={**headers, "Authorization": f"Bearer {token}"}, json=body, timeout=10
            )
            assert answer.status_code == 401 and "wrong issuer" in answer.headers["www-authenticate"]
        finally:
            process.terminate()
            process.wait(timeout=10)
