"""The issuer's settings: one small frozen dataclass, passed in, never global."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["SIGNING_ALGORITHMS", "SIGNING_MODES", "TOKEN_PROFILES", "IssuerSettings"]

# `Ed25519` is RFC 9864's fully-specified name for EdDSA over Ed25519: the same key and signature
# as `EdDSA`, but a verifier that allows it cannot be talked into another curve.
SIGNING_ALGORITHMS = ("RS256", "ES256", "EdDSA", "Ed25519")
TOKEN_PROFILES = ("id_token", "access_token")
# Where issue-token signs: "auto" picks per algorithm (see fake_enterprise/app.py), the others force it.
SIGNING_MODES = ("auto", "inline", "threadpool")


@dataclass(frozen=True)
class IssuerSettings:
    """How one issuer instance behaves.

    `issuer_url` is the `iss` of every token and the base of the discovery document.
    `secret` is the inner secret (header `Enterprise-Api-Secret-Key`), which every host holds: it
    opens the inner issue-token API and nothing else. `admin_secret` opens the admin API (sent as
    `Authorization: Bearer <admin secret>`); it must differ from `secret`.
    The data key encrypts grants and private signing keys at rest; without `data_key` it
    comes from `MCP_IDFWD_DATA_KEY` (base64url, 32 bytes), else from a 0600 key file next
    to the database (`data_key_file`, default `<db_path>.key`) created on first start;
    a `:memory:` database gets an ephemeral key.
    """

    issuer_url: str
    secret: str = field(repr=False)
    admin_secret: str = field(repr=False)
    db_path: str = ":memory:"
    alg: str = "RS256"
    token_ttl: int = 300
    token_profile: str = "id_token"
    data_key: bytes | None = field(default=None, repr=False)
    jwks_max_age: int = 60
    data_key_file: str | None = None
    # Verifiers accept a token a little past `exp`; a retired key stays published that much longer.
    retired_key_grace: int = 120
    # A minted token may carry any `exp`; a retired key is kept for at most this long on its behalf.
    max_key_retention: int = 86_400
    default_client_id: str = "mcp-host"
    access_token_scope: str = "openid profile email"
    max_body_bytes: int = 64 * 1024
    # The OAuth authorization server: with `auto_login`, an authorization request whose
    # `login_hint=<tenant>/<user>` names an existing user is answered with a code, no page.
    auto_login: bool = False
    authorization_code_ttl: int = 60
    refresh_token_ttl: int = 30 * 86_400
    sign_in_ttl: int = 600
    # Hold `<db_path>.lock` (`storage.DatabaseLock`) while the app lives, so a second issuer on
    # the same database is refused instead of drifting its keys apart. The CLI sets it; a process
    # that supervises several workers on one database takes the lock itself and leaves this off.
    exclusive_db: bool = False
    # How long a sign-in to the web console (`/console`) lasts.
    console_session_ttl: int = 3600
    # "inline": sign on the event loop; "threadpool": in a worker thread; "auto": per algorithm.
    signing_mode: str = "auto"
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("issuer_url must be an absolute http(s) URL without query or fragment")
        if not self.secret:
            raise ValueError("secret must not be empty")
        if not self.admin_secret:
            raise ValueError("admin_secret must not be empty")
        if self.admin_secret == self.secret:
            raise ValueError("admin_secret must differ from secret (the inner secret every host holds)")
        if self.alg not in SIGNING_ALGORITHMS:
            raise ValueError(f"alg must be one of {', '.join(SIGNING_ALGORITHMS)}")
        if self.signing_mode not in SIGNING_MODES:
            raise ValueError(f"signing_mode must be one of {', '.join(SIGNING_MODES)}")
        if self.token_profile not in TOKEN_PROFILES:
            raise ValueError(f"token_profile must be one of {', '.join(TOKEN_PROFILES)}")
        names = ("token_ttl", "jwks_max_age", "max_body_bytes", "max_key_retention", "refresh_token_ttl")
        for name in (*names, "authorization_code_ttl", "sign_in_ttl", "console_session_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer")
        if self.authorization_code_ttl > 60:
            raise ValueError("authorization_code_ttl must be at most 60 seconds")
        if self.retired_key_grace < 0:
            raise ValueError("retired_key_grace must not be negative")
        if self.data_key is not None and len(self.data_key) != 32:
            raise ValueError("data_key must be 32 bytes (AES-256)")

    @property
    def base_url(self) -> str:
        return self.issuer_url.rstrip("/")

    @property
    def jwks_uri(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"
