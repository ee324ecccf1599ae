"""Settings for the token verifier and the reference MCP server: frozen dataclasses, checked on creation."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from fake_mcp_server.authorization.settings import AuthorizationServerSettings

from fake_mcp_server.algorithms import ALGORITHM_KEY_TYPES, DEFAULT_ALGORITHMS

__all__ = [
    "ServerSettings",
    "VerifierSettings",
    "require_secure_transport",
    "same_issuer",
]


def _without_root_slash(url: str) -> str:
    if url.endswith("/") and urlsplit(url).path == "/":
        return url[:-1]
    return url


def same_issuer(configured: str, named: object) -> bool:
    """Whether `named` (a token's `iss`, a discovery document's `issuer`) is the configured issuer.

    Issuer identifiers compare as strings (RFC 8414 §3.3, OIDC Discovery §4.3), with one
    exception: an origin with and without its root slash (`https://idp.example/` and
    `https://idp.example`) is the same URL (RFC 3986 §6.2.3), and issuers differ in which they
    put in `iss`. Any other path compares exactly: `/tenant` and `/tenant/` are two issuers.
    """
    if not isinstance(named, str):
        return False
    return named == configured or _without_root_slash(named) == _without_root_slash(configured)


def _require_http_url(name: str, value: str, allow_insecure_http: bool) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an absolute http(s) URL")
    require_secure_transport(name, value, allow_insecure_http)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure_transport(name: str, url: str, allow_insecure_http: bool) -> None:
    """Refuse plain http to a host off this machine: Bearer tokens and keys would cross in clear text.

    Loopback (127.0.0.0/8, ::1, localhost) may use http; anything else needs https unless
    `allow_insecure_http` is set.
    """
    parts = urlsplit(url)
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname or ""):
        raise ValueError(
            f"{name} uses plain http to a non-loopback host; use https"
            " (or set allow_insecure_http to accept it)"
        )


@dataclass(frozen=True)
class VerifierSettings:
    """How `JWKSTokenVerifier` checks a token.

    `audience` is this server's resource URL: a token is accepted only if its `aud` (string or
    array) contains it exactly. The signing keys come from `jwks_url` when given, otherwise from
    the `jwks_uri` in `{issuer}/.well-known/openid-configuration`; when `issuer` is set, `iss`
    must equal it.
    """

    audience: str
    issuer: str | None = None
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0
    required_claims: tuple[str, ...] = ("iss", "sub", "aud", "exp", "iat")
    # Compared case-insensitively, with an optional "application/" prefix (RFC 7515 §4.1.9).
    # Empty means `typ` is not checked; otherwise a token without `typ` is refused.
    accepted_types: tuple[str, ...] = ("JWT", "at+jwt", "application/at+jwt")
    max_token_bytes: int = 16384
    # Seconds a token may live (`exp - iat`, or `exp - now` without `iat`): a stolen long-lived
    # token would outlast every key rotation and revocation.
    max_token_lifetime: float = 86400.0
    # A claim naming whoever vouched for `sub` (say `idp`, for an authorization server that issues
    # tokens for the users of several IdPs, whose subjects are unique per IdP only). When set, every
    # token must carry it as a string, and `AccessToken.subject` becomes `["<that claim>", "<sub>"]`
    # (JSON): the mcp SDK binds sessions to (client_id, iss, subject), which then tells apart two
    # IdPs' users who happen to share a `sub`. The claims themselves are unchanged.
    subject_qualifier: str | None = None
    # After a refresh for an unknown `kid` that did not find it (or after a failed fetch), no
    # further fetch for this long: a flood of made-up kids costs the issuer one request per
    # interval at most. A refresh that finds the new key (a real rotation) does not count.
    # It is also the floor of the cache lifetime, so `max-age=0` cannot turn into a fetch per request.
    min_jwks_refresh_interval: float = 5.0
    # Cache lifetime when the JWKS response has no `Cache-Control: max-age`.
    default_jwks_max_age: float = 300.0
    # Ceiling on the issuer's `max-age`, so a key the issuer withdraws stops being trusted in time.
    max_jwks_max_age: float = 86400.0
    # How long past expiry cached keys keep serving while the JWKS endpoint cannot be reached.
    jwks_stale_if_error: float = 86400.0
    max_jwks_bytes: int = 1024 * 1024
    # Verified tokens remembered (CLOCK eviction, docs/verifier-cache.md); 0 turns the cache off.
    cache_size: int = 10_000
    http_timeout: float = 5.0
    # One deadline on a whole key fetch (discovery + JWKS, however slowly the bytes come):
    # `http_timeout` bounds each read, so a server dripping a byte at a time could hold every
    # request that waits for keys for as long as it likes. Past it, those requests get the 503.
    jwks_fetch_deadline: float = 10.0
    # Accept plain http to non-loopback hosts (issuer, jwks_url, the jwks_uri discovery names,
    # an http audience). Off by default: tokens and keys would travel in clear text.
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.audience, str) or not self.audience:
            raise ValueError("audience must be a non-empty string")
        if self.issuer is None and self.jwks_url is None:
            raise ValueError("one of issuer or jwks_url is required")
        if self.issuer is not None:
            _require_http_url("issuer", self.issuer, self.allow_insecure_http)
        if self.jwks_url is not None:
            _require_http_url("jwks_url", self.jwks_url, self.allow_insecure_http)
        # The audience is the server's own resource URL when it is a URL at all.
        require_secure_transport("audience", self.audience, self.allow_insecure_http)
        if not self.algorithms:
            raise ValueError("algorithms must not be empty")
        unsupported = [alg for alg in self.algorithms if alg not in ALGORITHM_KEY_TYPES]
        if unsupported:
            raise ValueError(f"unsupported or symmetric algorithms: {', '.join(map(repr, unsupported))}")
        if self.leeway < 0:
            raise ValueError("leeway must not be negative")
        if self.max_token_lifetime <= 0:
            raise ValueError("max_token_lifetime must be positive")
        if self.subject_qualifier is not None and self.subject_qualifier in ("", "sub"):
            raise ValueError("subject_qualifier must name a claim other than sub")
        if self.max_token_bytes <= 0 or self.max_jwks_bytes <= 0:
            raise ValueError("size limits must be positive")
        if self.cache_size < 0:
            raise ValueError("cache_size must not be negative")
        if min(self.min_jwks_refresh_interval, self.default_jwks_max_age, self.jwks_stale_if_error) < 0:
            raise ValueError("JWKS intervals must not be negative")
        if self.max_jwks_max_age < self.min_jwks_refresh_interval:
            raise ValueError("max_jwks_max_age must be at least min_jwks_refresh_interval")
        if self.http_timeout <= 0 or self.jwks_fetch_deadline <= 0:
            raise ValueError("http_timeout and jwks_fetch_deadline must be positive")


@dataclass(frozen=True)
class ServerSettings:
    """The reference MCP server: who issues its tokens, and the URL it is reached at.

    `resource_url` is the streamable HTTP endpoint (e.g. "http://127.0.0.1:9100/mcp"); it is the
    audience tokens must carry. `verifier` overrides the default verifier settings (its audience
    must be `resource_url`).

    With `authorization` (`--auth id-jag`) the server runs its own authorization server at the
    origin of `resource_url`, which exchanges ID-JAGs from trusted IdPs for access tokens; the
    MCP endpoint then accepts that authorization server's tokens only, and `issuer_url` and
    `verifier` play no part.
    """

    issuer_url: str
    resource_url: str
    jwks_url: str | None = None
    verifier: VerifierSettings | None = None
    server_name: str = "mcp-idfwd-server"
    max_notes_per_user: int = 100
    max_note_chars: int = 2000
    # Handed to the SDK, which sets up root logging with it when nothing else has: at INFO it
    # reports every session start on stderr, noise for a server embedded in tests and demos.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    authorization: AuthorizationServerSettings | None = None
    # Passed on to the default verifier settings; see `VerifierSettings.allow_insecure_http`.
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        _require_http_url("issuer_url", self.issuer_url, self.allow_insecure_http)
        _require_http_url("resource_url", self.resource_url, self.allow_insecure_http)
        if not urlsplit(self.resource_url).path.strip("/"):
            raise ValueError("resource_url must include the MCP endpoint path, e.g. /mcp")
        if self.jwks_url is not None:
            _require_http_url("jwks_url", self.jwks_url, self.allow_insecure_http)
        if self.verifier is not None:
            if self.verifier.audience != self.resource_url:
                raise ValueError("verifier.audience must equal resource_url")
            if not {"iss", "sub", "aud", "exp"} <= set(self.verifier.required_claims):
                raise ValueError("the server needs iss, sub, aud and exp among verifier.required_claims")
        if self.authorization is not None and self.verifier is not None:
            raise ValueError("verifier settings do not apply to a server with its own authorization server")
        if self.max_notes_per_user < 0 or self.max_note_chars <= 0:
            raise ValueError("note limits must be positive")

    def verifier_settings(self) -> VerifierSettings:
        """The verifier settings this server uses: `verifier` if given, else defaults for this issuer."""
        if self.verifier is not None:
            return self.verifier
        return VerifierSettings(
            audience=self.resource_url,
            issuer=self.issuer_url,
            jwks_url=self.jwks_url,
            allow_insecure_http=self.allow_insecure_http,
        )
