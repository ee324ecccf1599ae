"""`--log-level` and the access logs of `up` (issuer and MCP server): real requests carrying a
token, the secrets and an authorization code, and none of them in the log.

The logs are read at debug, the most a user can ask for, so every library's logger is in play."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from harness.access_log import RedactingFilter, describe_token, redacted_query
from harness.conformance import initialize_request

REDIRECT_URI = "http://127.0.0.1:1/callback"


@dataclass
class Up:
    process: subprocess.Popen[str]
    issuer_url: str
    server_url: str
    secret: str
    admin_secret: str

    def stop(self) -> str:
        """Stop `up`; everything it logged."""
        self.process.terminate()
        _, err = self.process.communicate(timeout=30)
        return err


@pytest.fixture
def up() -> Iterator[Up]:
    command = [sys.executable, "-m", "harness", "up", "--issuer-port=0", "--server-port=0"]
    command += ["--log-level=debug", "--auto-login"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        banner = ""
        while "Call a tool as" not in banner:
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"up exited early: {process.communicate(timeout=10)[1]}")
            banner += line
        values = {
            name: re.search(rf"^\s+{name}\s+(\S+)", banner, re.MULTILINE).group(1)  # type: ignore[union-attr]
            for name in ("issuer", "secret", "admin")
        }
        server = re.search(r"^\s+MCP server\s+(\S+)", banner, re.MULTILINE).group(1)  # type: ignore[union-attr]
        yield Up(process, values["issuer"], server, values["secret"], values["admin"])
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_the_access_log_shows_requests_and_never_a_token_a_secret_or_a_code(up: Up) -> None:
    http = httpx.Client(timeout=30)
    # A token, through the inner API (the inner secret in a header).
    issued = http.post(
        f"{up.issuer_url}/inner/api/mcp/issue-token",
        headers={"Enterprise-Api-Secret-Key": up.secret},
        json={"tenant_id": "acme", "user_id": "alice", "app_id": "", "audience": up.server_url},
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    header, claims = jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
    # The token, to the MCP server.
    answer = http.post(
        up.server_url,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        json=initialize_request("logging-test"),
    )
    assert answer.status_code == 200
    # The OAuth code flow: state and code_challenge in the authorize query, the code in the redirect.
    registered = http.post(
        f"{up.issuer_url}/register",
        json={"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"},
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    state = "state-" + secrets.token_hex(8)
    authorize = http.get(
        f"{up.issuer_url}/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": state,
            "login_hint": "acme/alice",
            "resource": up.server_url,
        },
    )
    assert authorize.status_code == 302, authorize.text
    code = parse_qs(urlsplit(authorize.headers["location"]).query)["code"][0]
    exchanged = http.post(
        f"{up.issuer_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "resource": up.server_url,
        },
    )
    assert exchanged.status_code == 200, exchanged.text
    oauth_token = exchanged.json()["access_token"]
    # Secrets where they do not belong: in a query string.
    http.get(
        f"{up.issuer_url}/.well-known/jwks.json", params={"code": code, "token": token, "key": up.secret}
    )
    http.close()

    log = up.stop()
    secrets_seen = {
        "the token": token,
        "the OAuth access token": oauth_token,
        "the inner secret": up.secret,
        "the admin secret": up.admin_secret,
        "the authorization code": code,
        "the state": state,
        "the code challenge": challenge,
        "the code verifier": verifier,
        "the token's signature": token.rsplit(".", 1)[1],
    }
    for what, value in secrets_seen.items():
        assert value not in log, f"{what} is in the log"
    # The requests themselves are there, each token as its kid, sub and jti.
    assert re.search(
        rf'mcp_idfwd\.access\.server: 127\.0\.0\.1:\d+ "POST /mcp" 200 [\d.]+ms bearer '
        rf"jwt\(kid={re.escape(header['kid'])} sub={claims['sub']} jti={re.escape(claims['jti'])}\)",
        log,
    ), log
    assert re.search(
        r'mcp_idfwd\.access\.issuer: 127\.0\.0\.1:\d+ "GET /authorize\?response_type=code&client_id='
        rf"{re.escape(client_id)}&redirect_uri=\*\*\*&code_challenge=\*\*\*&code_challenge_method=S256"
        r'&state=\*\*\*&login_hint=\*\*\*&resource=\*\*\*" 302 ',
        log,
    ), log
    assert '"GET /.well-known/jwks.json?code=***&token=***&key=***" 200' in log
    assert '"POST /admin/users" 201' in log and "bearer opaque (not shown)" in log


def test_describe_token_shows_kid_sub_and_jti_only() -> None:
    token = jwt.encode(
        {"sub": "s-1", "jti": "j-1", "email": "a@example.com"}, "k" * 32, headers={"kid": "k1"}
    )
    assert describe_token(token) == "jwt(kid=k1 sub=s-1 jti=j-1)"
    assert describe_token("not-a-jwt") == "opaque (not shown)"
    assert redacted_query("client_id=c&code=abc&state=xyz") == "client_id=c&code=***&state=***"


def test_the_filter_rewrites_tokens_and_secrets_in_any_record() -> None:
    import logging

    token = jwt.encode({"sub": "s-2", "jti": "j-2"}, "k" * 32, headers={"kid": "k2"})
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "sent %s with %s", (token, "hunter2-secret"), None
    )
    assert RedactingFilter(["hunter2-secret"]).filter(record)
    assert record.getMessage() == "sent jwt(kid=k2 sub=s-2 jti=j-2) with ***"
