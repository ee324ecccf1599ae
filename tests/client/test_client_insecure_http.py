"""Contract C4 on the client side: plain http off loopback is refused unless `allow_insecure_http`."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_support import ISSUE_TOKEN_PATH, TENANT, Stack

from client_runtime import (
    Database,
    DataCipher,
    EnterpriseTokenSettings,
    MCPIssuerConfigError,
    MCPProvider,
    MCPProviderConfigError,
    ProviderStore,
)
from harness.cli import main

OFF_LOOPBACK = ["http://mcp.example.com/mcp", "http://10.0.0.7:8080/mcp", "http://[fe80::1]/mcp"]
LOOPBACK = [
    "http://127.0.0.1:9/mcp",
    "http://127.1.2.3:9/mcp",
    "http://[::1]:9/mcp",
    "http://localhost:9/mcp",
    "http://LOCALHOST:9/mcp",
]


def mapped(url: str) -> str:
    """The same loopback server addressed as ::ffff:127.0.0.1: outside the contract's loopback list
    (127.0.0.0/8, ::1, localhost), yet reachable here, so a test can go through with the opt-in."""
    return url.replace("127.0.0.1", "[::ffff:127.0.0.1]")


@pytest.mark.parametrize("url", OFF_LOOPBACK)
def test_a_provider_off_loopback_needs_https_or_the_opt_in(url: str) -> None:
    with pytest.raises(MCPProviderConfigError, match="allow_insecure_http"):
        MCPProvider(provider_id="p", tenant_id="t", server_url=url)
    assert MCPProvider(provider_id="p", tenant_id="t", server_url=url, allow_insecure_http=True)
    assert MCPProvider(provider_id="p", tenant_id="t", server_url=url.replace("http://", "https://"))


@pytest.mark.parametrize("url", LOOPBACK)
def test_loopback_stays_allowed_over_http(url: str) -> None:
    assert MCPProvider(provider_id="p", tenant_id="t", server_url=url).allow_insecure_http is False
    assert EnterpriseTokenSettings(issuer_url=url, inner_api_secret="s").allow_insecure_http is False


@pytest.mark.parametrize("url", OFF_LOOPBACK)
def test_an_issuer_off_loopback_needs_https_or_the_opt_in(url: str) -> None:
    with pytest.raises(MCPIssuerConfigError, match="allow_insecure_http") as caught:
        EnterpriseTokenSettings(issuer_url=url, inner_api_secret="inner-S3cret")
    assert "inner-S3cret" not in str(caught.value)
    assert EnterpriseTokenSettings(issuer_url=url, inner_api_secret="s", allow_insecure_http=True)
    assert EnterpriseTokenSettings(issuer_url=url.replace("http://", "https://"), inner_api_secret="s")


def test_the_store_refuses_a_move_to_plain_http_unless_opted_in(tmp_path: Path) -> None:
    providers = ProviderStore(Database(tmp_path / "c.sqlite3"), DataCipher(bytes(32)))
    providers.create(MCPProvider(provider_id="p", tenant_id="t", server_url="https://mcp.example.com/mcp"))
    with pytest.raises(MCPProviderConfigError, match="allow_insecure_http"):
        providers.update("t", "p", server_url="http://mcp.example.com/mcp")
    moved = providers.update("t", "p", server_url="http://mcp.example.com/mcp", allow_insecure_http=True)
    assert providers.get("t", "p") == moved
    # Dropping the opt-in while the URL still needs it is refused too; the stored row is unchanged.
    with pytest.raises(MCPProviderConfigError, match="allow_insecure_http"):
        providers.update("t", "p", allow_insecure_http=False)
    assert providers.get("t", "p") == moved


def call_argv(stack: Stack, user: str) -> list[str]:
    """`mcp-idfwd call` as `user`, with the issuer addressed off the contract's loopback list."""
    issuer = mapped(stack.issuer_url)
    return [
        "call",
        f"--issuer={issuer}",
        f"--secret={stack.secret}",
        f"--tenant={TENANT}",
        f"--server={stack.server_url}",
        f"--user={user}",
        "--tool=whoami",
    ]


def test_cli_call_refuses_plain_http_off_loopback_in_one_line(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    user = stack.new_user("insecure")
    mark = stack.issuer_log.mark()
    assert main(call_argv(stack, user)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "allow_insecure_http" in err and "--allow-insecure-http" in err
    assert stack.secret not in err
    assert stack.issuer_log.since(mark) == []


def test_cli_call_with_allow_insecure_http_goes_through(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    user = stack.new_user("insecure-ok")
    mark = stack.issuer_log.mark()
    assert main([*call_argv(stack, user), "--allow-insecure-http"]) == 0, capsys.readouterr()
    issued = [r for r in stack.issuer_log.since(mark) if r.path == ISSUE_TOKEN_PATH]
    assert [r.headers["host"] for r in issued] == [mapped(stack.issuer_url).removeprefix("http://")]
