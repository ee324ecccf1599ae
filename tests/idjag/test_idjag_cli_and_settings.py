"""`mcp-idfwd server --auth id-jag`, and the settings behind it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from idjag_support import JWT_BEARER, IdJagMinter

from fake_mcp_server import ServerSettings, VerifierSettings
from fake_mcp_server.authorization import AuthorizationServerSettings, ClientCredentials
from fake_mcp_server.authorization.replay import ReplayGuard
from harness.cli import main
from harness.conformance import initialize_request
from harness.pytest_plugin import IssuerHandle

SECRET = "cli-client-secret-90ab"


@pytest.fixture
def cli_server(idfwd_issuer: IssuerHandle) -> Iterator[tuple[str, str]]:
    command = [
        *(sys.executable, "-m", "harness", "server", "--issuer", idfwd_issuer.url, "--port", "0"),
        *("--auth", "id-jag", "--trust-idp", idfwd_issuer.url, "--client", f"cli-app:{SECRET}"),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            first_line = process.stdout.readline()  # printed once the socket listens
            assert first_line.startswith("mcp server: "), process.stderr.read()
            banner = "".join(process.stdout.readline() for _ in range(3))
            yield first_line.removeprefix("mcp server: ").strip(), banner
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_cli_server_runs_its_own_authorization_server(
    cli_server: tuple[str, str], idfwd_issuer: IssuerHandle
) -> None:
    resource_url, banner = cli_server
    issuer = resource_url.removesuffix("/mcp")
    assert f"authorization server: {issuer}" in banner
    assert "cli-app" in banner
    assert SECRET not in banner
    mint = IdJagMinter(idfwd_issuer.admin, audience=issuer, resource=resource_url, client_id="cli-app")
    form = {"grant_type": JWT_BEARER, "assertion": mint(), "client_id": "cli-app", "client_secret": SECRET}

    token = httpx.post(issuer + "/token", data=form, timeout=10).json()["access_token"]
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    response = httpx.post(resource_url, headers=headers, json=initialize_request("idjag-cli"), timeout=10)

    assert response.status_code == 200


@pytest.mark.parametrize(
    "extra",
    [
        ["--client", "a:b"],
        ["--trust-idp", "http://127.0.0.1:1"],
        ["--auth", "id-jag"],
        ["--auth", "id-jag", "--client", "a:b", "--trust-idp", "not-a-url"],
        ["--auth", "id-jag", "--client", "a:b", "--client", "a:c"],
        ["--auth", "id-jag", "--client", "a:b", "--jwks-url", "http://127.0.0.1:1/jwks"],
    ],
    ids=[
        "client-without-id-jag",
        "trust-without-id-jag",
        "no-client",
        "bad-idp",
        "duplicate-client",
        "jwks-url",
    ],
)
def test_cli_server_refuses_bad_id_jag_settings(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--issuer", "http://127.0.0.1:1", "--port", "0", *extra]) == 2
    assert capsys.readouterr().err.startswith("mcp-idfwd server: ")


@pytest.mark.parametrize("value", ["no-colon", ":secret", "id:"], ids=["no-colon", "no-id", "no-secret"])
def test_cli_client_must_be_id_colon_secret(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["server", "--issuer", "http://127.0.0.1:1", "--auth", "id-jag", "--client", value])

    assert exited.value.code == 2
    assert "--client" in capsys.readouterr().err


def test_client_credentials_parse_and_hide_the_secret() -> None:
    credentials = ClientCredentials.parse("app:se:cret")

    assert (credentials.client_id, credentials.client_secret) == ("app", "se:cret")
    assert "se:cret" not in repr(credentials)
    assert "se:cret" not in repr(
        AuthorizationServerSettings(trusted_idps=("http://i",), clients=(credentials,))
    )


def test_the_authorization_server_replaces_the_verifier_settings() -> None:
    resource = "http://127.0.0.1:2/mcp"
    authorization = AuthorizationServerSettings(trusted_idps=("http://127.0.0.1:1",), allow_registration=True)
    with pytest.raises(ValueError, match="verifier settings"):
        ServerSettings(
            issuer_url="http://127.0.0.1:1",
            resource_url=resource,
            verifier=VerifierSettings(audience=resource, issuer="http://127.0.0.1:1"),
            authorization=authorization,
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"trusted_idps": ()}, "at least one"),
        ({"algorithms": ("HS256",)}, "asymmetric"),
        ({"algorithms": ("none",)}, "asymmetric"),
        ({"max_assertion_lifetime": 0}, "max_assertion_lifetime"),
        ({"access_token_lifetime": 0}, "access_token_lifetime"),
    ],
)
def test_authorization_settings_are_checked(fields: dict[str, object], message: str) -> None:
    defaults: dict[str, object] = {"trusted_idps": ("http://127.0.0.1:1",), "allow_registration": True}
    with pytest.raises(ValueError, match=message):
        AuthorizationServerSettings(**{**defaults, **fields})  # type: ignore[arg-type]


def test_the_replay_guard_forgets_a_jti_once_it_expired() -> None:
    now = [1000.0]
    guard = ReplayGuard(lambda: now[0])

    assert guard.first_use("idp", "j1", remember_until=1300.0)
    assert not guard.first_use("idp", "j1", remember_until=1300.0)
    assert guard.first_use("other-idp", "j1", remember_until=1300.0)  # jti is unique per issuer only
    now[0] = 1300.5
    assert guard.first_use("idp", "j2", remember_until=1600.0)
    assert len(guard) == 1
    assert guard.first_use("idp", "j1", remember_until=1600.0)
