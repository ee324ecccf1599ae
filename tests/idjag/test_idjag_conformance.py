"""The reusable ID-JAG check list (harness.idjag_conformance): our AS passes it, a weak AS is caught."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import jwt
import pytest
from idjag_support import HOST_APP, IdJagMinter, RunningAS
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.cli import main
from harness.idjag_conformance import IDJAG_CHECKS, IdJagTarget, run_idjag_checks
from harness.pytest_plugin import IssuerHandle
from harness.servers import bind_loopback, serve_in_thread, socket_url


def _target(token_endpoint: str) -> IdJagTarget:
    return IdJagTarget(token_endpoint, HOST_APP.client_id, HOST_APP.client_secret)


def test_our_authorization_server_passes_every_check(as_server: RunningAS, mint: IdJagMinter) -> None:
    results = run_idjag_checks(_target(as_server.token_url), mint)

    assert [result.name for result in results] == [check.name for check in IDJAG_CHECKS]
    assert [result for result in results if not result.passed] == []
    observed = {result.name: result.observed for result in results}
    assert observed["scope escalation"] == "400 invalid_scope"
    assert observed["bad client secret"] == "401 invalid_client"


def _weak_authorization_server(jwks_url: str) -> Starlette:
    """Checks the client secret, the signature (any key of the IdP) and exp; nothing else ID-JAG-specific."""
    keys = jwt.PyJWKClient(jwks_url)

    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        if (form.get("client_id"), form.get("client_secret")) != (HOST_APP.client_id, HOST_APP.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        assertion = str(form.get("assertion", ""))
        try:
            key = await run_in_threadpool(keys.get_signing_key_from_jwt, assertion)
            claims = jwt.decode(
                assertion, key.key, algorithms=["RS256", "ES256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        scope = form.get("scope") or claims.get("scope")
        token = secrets.token_urlsafe(16)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 60, "scope": scope})

    return Starlette(routes=[Route("/token", token, methods=["POST"])])


@pytest.fixture
def weak_as(idfwd_issuer: IssuerHandle) -> Iterator[str]:
    sock = bind_loopback()
    with serve_in_thread(_weak_authorization_server(idfwd_issuer.url + "/.well-known/jwks.json"), sock):
        yield socket_url(sock)


def test_a_weak_authorization_server_is_caught(weak_as: str, idfwd_issuer: IssuerHandle) -> None:
    mint = IdJagMinter(idfwd_issuer.admin, audience=weak_as, resource="http://127.0.0.1:9/weak/mcp")

    results = run_idjag_checks(_target(weak_as + "/token"), mint)

    failed = {result.name: result.observed for result in results if not result.passed}
    assert failed == {
        "wrong typ": "200",
        "wrong aud": "200",
        "another client's ID-JAG": "200",
        "replayed jti": "200",
        "untrusted iss": "200",
        "resource for another server": "200",
        "scope escalation": "200 (granted 'idjag-conformance.read idjag-conformance.admin')",
    }


def test_an_unreachable_authorization_server_fails_every_check(idfwd_issuer: IssuerHandle) -> None:
    with bind_loopback() as dead:
        url = socket_url(dead)
    mint = IdJagMinter(idfwd_issuer.admin, audience=url, resource=url + "/mcp")

    results = run_idjag_checks(_target(url + "/token"), mint)

    assert not any(result.passed for result in results)
    assert results[0].observed == "0 no answer (ConnectError)"


# --- mcp-idfwd conformance --idjag ------------------------------------------------------------------


def _cli(
    capsys: pytest.CaptureFixture[str], issuer: IssuerHandle, token_endpoint: str, resource: str, *extra: str
) -> tuple[int, str, str]:
    code = main(
        [
            "conformance",
            "--idjag",
            f"--server={resource}",
            f"--as-token-endpoint={token_endpoint}",
            f"--client={HOST_APP.client_id}:{HOST_APP.client_secret}",
            f"--issuer-admin={issuer.url}",
            f"--admin-secret={issuer.admin_secret}",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_cli_passes_our_authorization_server(
    capsys: pytest.CaptureFixture[str], idfwd_issuer: IssuerHandle, as_server: RunningAS
) -> None:
    code, out, err = _cli(capsys, idfwd_issuer, as_server.token_url, as_server.resource_url, "--format=json")

    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["exit_code"] == 0
    assert report["server_url"] == as_server.token_url
    assert report["audience"] == as_server.issuer  # the token endpoint's origin, by default
    assert [result["title"] for result in report["results"]] == [check.name for check in IDJAG_CHECKS]
    assert {result["verdict"] for result in report["results"]} == {"pass"}
    by_name = {result["name"]: result for result in report["results"]}
    assert (by_name["wrong-typ"]["observed_status"], by_name["wrong-typ"]["observed_challenge"]) == (
        400,
        "invalid_grant",
    )
    assert by_name["another-clients-id-jag"]["expected_status"] == "400 invalid_grant"
    assert HOST_APP.client_secret not in out


def test_the_cli_catches_the_weak_authorization_server(
    capsys: pytest.CaptureFixture[str], idfwd_issuer: IssuerHandle, weak_as: str
) -> None:
    code, out, _ = _cli(capsys, idfwd_issuer, weak_as + "/token", "http://127.0.0.1:9/weak/mcp")

    assert code == 1
    failed = {line.split("  ")[0] for line in out.splitlines() if line.rstrip().endswith("FAIL")}
    assert failed == {
        "wrong-typ",
        "wrong-aud",
        "another-clients-id-jag",
        "replayed-jti",
        "untrusted-iss",
        "resource-for-another-server",
        "scope-escalation",
    }
    assert "NOT CONFORMANT: 13 cases (6 pass, 7 fail)" in out


def test_the_cli_says_in_one_line_what_it_cannot_do(
    capsys: pytest.CaptureFixture[str], idfwd_issuer: IssuerHandle, as_server: RunningAS
) -> None:
    with bind_loopback() as dead:
        unreachable = socket_url(dead) + "/token"
    token_url, resource = as_server.token_url, as_server.resource_url

    assert _cli(capsys, idfwd_issuer, unreachable, resource)[0] == 3
    wrong_secret = _cli(capsys, idfwd_issuer, token_url, resource, "--admin-secret=not-the-admin-secret")
    strict = _cli(capsys, idfwd_issuer, token_url, resource, "--strict", "--case=alg-none")

    assert wrong_secret[0] == 2
    assert wrong_secret[2].startswith("conformance: cannot mint ID-JAGs through the issuer's admin API")
    assert wrong_secret[2].count("\n") == 1 and "not-the-admin-secret" not in wrong_secret[2]
    assert strict[0] == 2 and strict[2] == "conformance: --strict, --case do not apply to --idjag\n"
    client = f"--client={HOST_APP.client_id}:{HOST_APP.client_secret}"
    no_idjag = main(
        [
            "conformance",
            f"--server={resource}",
            "--issuer-admin=http://127.0.0.1:9",
            "--admin-secret=x",
            client,
        ]
    )
    assert no_idjag == 2 and capsys.readouterr().err == "conformance: --client need --idjag\n"
