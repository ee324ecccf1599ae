"""Settings refuse what would make the verifier unsafe or the server unreachable."""

from __future__ import annotations

from typing import Any

import pytest

from fake_mcp_server import ServerSettings, VerifierSettings

AUDIENCE = "http://127.0.0.1:9100/mcp"
ISSUER = "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    "options",
    [
        {"algorithms": ("HS256",)},
        {"algorithms": ("RS256", "none")},
        {"algorithms": ()},
        {"issuer": None},
        {"issuer": "127.0.0.1:9000"},
        {"jwks_url": "file:///etc/jwks.json"},
        {"audience": ""},
        {"leeway": -1},
        {"max_token_bytes": 0},
        {"cache_size": -1},
        {"max_token_lifetime": 0},
        {"http_timeout": 0},
        {"min_jwks_refresh_interval": 10, "max_jwks_max_age": 5},
    ],
    ids=lambda options: ",".join(f"{k}={v!r}" for k, v in options.items()),
)
def test_verifier_settings_refuse(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        VerifierSettings(**{"audience": AUDIENCE, "issuer": ISSUER, **options})


def test_verifier_defaults_are_asymmetric_only() -> None:
    settings = VerifierSettings(audience=AUDIENCE, issuer=ISSUER)
    assert not [alg for alg in settings.algorithms if alg.startswith("HS") or alg == "none"]
    assert settings.max_token_bytes == 16384
    assert settings.required_claims == ("iss", "sub", "aud", "exp", "iat")


@pytest.mark.parametrize(
    "options",
    [
        {"resource_url": "http://127.0.0.1:9100"},
        {"resource_url": "mcp"},
        {"issuer_url": "nope"},
        {"verifier": VerifierSettings(audience="http://127.0.0.1:1/mcp", issuer=ISSUER)},
        {
            "verifier": VerifierSettings(
                audience=AUDIENCE, issuer=ISSUER, required_claims=("iss", "aud", "exp")
            )
        },
    ],
    ids=["no-path", "relative", "bad-issuer", "verifier-other-audience", "verifier-without-sub"],
)
def test_server_settings_refuse(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ServerSettings(**{"issuer_url": ISSUER, "resource_url": AUDIENCE, **options})


def test_server_settings_build_a_verifier_for_the_resource() -> None:
    settings = ServerSettings(issuer_url=ISSUER, resource_url=AUDIENCE, jwks_url=ISSUER + "/jwks")
    verifier = settings.verifier_settings()
    assert (verifier.audience, verifier.issuer, verifier.jwks_url) == (AUDIENCE, ISSUER, ISSUER + "/jwks")


@pytest.mark.parametrize(
    "options",
    [
        {"issuer": "http://issuer.example"},
        {"jwks_url": "http://keys.example/jwks.json"},
        {"audience": "http://mcp.example/mcp"},
        {"issuer": "http://10.0.0.5:9000"},
        {"issuer": "http://[::ffff:10.0.0.5]:9000"},
    ],
    ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()),
)
def test_plain_http_off_loopback_is_refused_unless_allowed(options: dict[str, Any]) -> None:
    settings = {"audience": AUDIENCE, "issuer": ISSUER, **options}
    with pytest.raises(ValueError, match="allow_insecure_http") as refused:
        VerifierSettings(**settings)
    assert next(iter(options)) in str(refused.value)
    assert VerifierSettings(**settings, allow_insecure_http=True)


@pytest.mark.parametrize(
    "issuer",
    [
        "http://127.0.0.1:9000",
        "http://127.8.9.10",
        "http://[::1]:9000",
        "http://localhost:9000",
        "https://idp.example",
    ],
)
def test_loopback_http_and_any_https_are_accepted(issuer: str) -> None:
    assert VerifierSettings(audience="https://mcp.example/mcp", issuer=issuer).issuer == issuer


def test_server_settings_refuse_plain_http_off_loopback_unless_allowed() -> None:
    with pytest.raises(ValueError, match=r"resource_url .*allow_insecure_http"):
        ServerSettings(issuer_url=ISSUER, resource_url="http://mcp.example/mcp")
    with pytest.raises(ValueError, match=r"issuer_url .*allow_insecure_http"):
        ServerSettings(issuer_url="http://idp.example", resource_url=AUDIENCE)
    allowed = ServerSettings(
        issuer_url="http://idp.example", resource_url="http://mcp.example/mcp", allow_insecure_http=True
    )
    assert allowed.verifier_settings().allow_insecure_http
