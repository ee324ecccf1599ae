"""Settings of the server's own authorization server (`--auth id-jag`): frozen, checked on creation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fake_mcp_server.algorithms import ALGORITHM_KEY_TYPES, DEFAULT_ALGORITHMS

__all__ = ["AuthorizationServerSettings", "ClientCredentials"]


@dataclass(frozen=True)
class ClientCredentials:
    """A confidential client provisioned out of band: its id and secret (the secret is never shown)."""

    client_id: str
    client_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_id.isprintable() or self.client_id != self.client_id.strip():
            raise ValueError("client_id must be non-empty printable text without surrounding spaces")
        if not self.client_secret or not self.client_secret.isprintable():
            raise ValueError(f"client {self.client_id!r} needs a non-empty printable secret")

    @classmethod
    def parse(cls, text: str) -> ClientCredentials:
        """`ID:SECRET` (the id ends at the first colon, so the secret may contain colons)."""
        client_id, colon, secret = text.partition(":")
        if not colon:
            raise ValueError("expected ID:SECRET")
        return cls(client_id, secret)


@dataclass(frozen=True)
class AuthorizationServerSettings:
    """The authorization server that accepts ID-JAGs (SEP-990) and issues this server's access tokens.

    Its issuer is the origin of the server's resource URL. It trusts ID-JAGs signed by any of
    `trusted_idps` (issuer URLs, compared as strings; their keys come from OIDC discovery).
    Clients are the `clients` given here, plus, with `allow_registration`, those that register
    themselves (RFC 7591).
    """

    trusted_idps: tuple[str, ...]
    clients: tuple[ClientCredentials, ...] = ()
    allow_registration: bool = False
    max_registered_clients: int = 1000
    # Accepted on ID-JAGs; asymmetric only (see ALGORITHM_KEY_TYPES), never `none`.
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0
    # An ID-JAG is a short-lived grant: one whose exp - iat is longer is refused outright.
    max_assertion_lifetime: float = 300.0
    max_assertion_bytes: int = 16384
    access_token_lifetime: int = 300
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.trusted_idps:
            raise ValueError("trust at least one identity provider (trusted_idps)")
        for idp in self.trusted_idps:
            parts = urlsplit(idp)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"trusted identity provider {idp!r} is not an absolute http(s) URL")
        ids = [client.client_id for client in self.clients]
        duplicates = sorted({client_id for client_id in ids if ids.count(client_id) > 1})
        if duplicates:
            raise ValueError(f"client ids given more than once: {', '.join(duplicates)}")
        if not self.clients and not self.allow_registration:
            raise ValueError("no client could get a token: provision a client or allow registration")
        unsupported = [alg for alg in self.algorithms if alg not in ALGORITHM_KEY_TYPES]
        if not self.algorithms or unsupported:
            raise ValueError(f"algorithms must be asymmetric JWS algorithms, not {unsupported!r}")
        if self.leeway < 0 or self.max_assertion_lifetime <= 0:
            raise ValueError("leeway must not be negative and max_assertion_lifetime must be positive")
        if self.access_token_lifetime <= 0 or self.max_assertion_bytes <= 0:
            raise ValueError("access_token_lifetime and max_assertion_bytes must be positive")
        if self.max_registered_clients < 0:
            raise ValueError("max_registered_clients must not be negative")
