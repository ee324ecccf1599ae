"""Which clients of a tenant may get ID-JAGs, for which MCP authorization servers and resources.

The enterprise-managed authorization extension leaves the IdP to "evaluate administrator-defined
policy" before it issues an ID-JAG. Ours is an allow-list per tenant:

    {"clients": {"<client_id at this IdP>": {"audiences": {"<MCP AS issuer>": {
        "resources": ["<MCP server URL>", ...],
        "scopes": ["notes.read", ...],          # optional: the scopes it may carry (else any asked)
        "client_id": "<its id at that AS>"}}}}} # optional: when the AS knows the client by another id

A tenant without a policy gets no ID-JAG at all (deny by default: an IdP must not let any client
act as its users at any server nobody approved). An empty `clients` object denies the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fake_enterprise.errors import IssuerError
from fake_enterprise.oauth.errors import OAuthError
from fake_enterprise.storage import Database
from fake_enterprise.validation import check_identifier, check_url

__all__ = ["AudienceGrant", "IdJagPolicy", "IdJagPolicyStore"]

_MAX_ENTRIES = 1000
_MAX_SCOPE_LENGTH = 256

_SCHEMA = """CREATE TABLE IF NOT EXISTS id_jag_policies (
    tenant_id TEXT PRIMARY KEY,
    policy TEXT NOT NULL
)"""


def _invalid(message: str) -> IssuerError:
    return IssuerError(400, "invalid_request", message)


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{name} must be a JSON object")
    if len(value) > _MAX_ENTRIES:
        raise _invalid(f"{name} must have at most {_MAX_ENTRIES} members")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > _MAX_ENTRIES:
        raise _invalid(f"{name} must be a list of at most {_MAX_ENTRIES} items")
    return value


def _scope(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_SCOPE_LENGTH:
        raise _invalid(f"{name} must be a scope token of 1 to {_MAX_SCOPE_LENGTH} characters")
    # RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    if any(ch in ' "\\' or not 0x21 <= ord(ch) <= 0x7E for ch in value):
        raise _invalid(f"{name} is not a valid scope token (RFC 6749 §3.3)")
    return value


@dataclass(frozen=True)
class AudienceGrant:
    """What one client may get ID-JAGs for at one MCP authorization server."""

    audience: str
    resources: tuple[str, ...]
    scopes: tuple[str, ...] | None = None
    client_id: str | None = None

    @classmethod
    def from_json(cls, audience: str, value: Any, name: str) -> AudienceGrant:
        entry = _object(value, name)
        unknown = sorted(set(entry) - {"resources", "scopes", "client_id"})
        if unknown:
            raise _invalid(f"{name}: unknown field(s): {', '.join(unknown)}")
        if "resources" not in entry:
            raise _invalid(f"{name}: missing field 'resources'")
        resources = _list(entry["resources"], f"{name}.resources")
        scopes = entry.get("scopes")
        client_id = entry.get("client_id")
        return cls(
            audience=audience,
            resources=tuple(check_url(f"{name}.resources[{i}]", item) for i, item in enumerate(resources)),
            scopes=None
            if scopes is None
            else tuple(
                _scope(item, f"{name}.scopes[{i}]") for i, item in enumerate(_list(scopes, f"{name}.scopes"))
            ),
            client_id=None if client_id is None else check_identifier(f"{name}.client_id", client_id),
        )

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"resources": list(self.resources)}
        if self.scopes is not None:
            answer["scopes"] = list(self.scopes)
        if self.client_id is not None:
            answer["client_id"] = self.client_id
        return answer

    def granted_scopes(self, requested: tuple[str, ...] | None) -> tuple[str, ...]:
        """The scopes the ID-JAG carries: the requested ones this grant allows (the draft lets
        the IdP narrow them), or all it allows when none were asked for."""
        if self.scopes is None:
            return requested or ()
        if requested is None:
            return self.scopes
        granted = tuple(scope for scope in requested if scope in self.scopes)
        if requested and not granted:
            raise OAuthError(
                "invalid_scope", f"none of the requested scopes is allowed for {self.audience!r}"
            )
        return granted


@dataclass(frozen=True)
class IdJagPolicy:
    """A tenant's allow-list: client id -> MCP authorization server issuer -> what it may get."""

    clients: Mapping[str, Mapping[str, AudienceGrant]]

    @classmethod
    def from_json(cls, body: Any) -> IdJagPolicy:
        body = _object(body, "body")
        unknown = sorted(set(body) - {"clients"})
        if unknown:
            raise _invalid(f"unknown field(s): {', '.join(unknown)}")
        if "clients" not in body:
            raise _invalid("missing field 'clients'")
        clients: dict[str, dict[str, AudienceGrant]] = {}
        for client_id, entry in _object(body["clients"], "clients").items():
            check_identifier("client id", client_id)
            name = f"clients[{client_id!r}]"
            entry = _object(entry, name)
            unknown = sorted(set(entry) - {"audiences"})
            if unknown:
                raise _invalid(f"{name}: unknown field(s): {', '.join(unknown)}")
            audiences = _object(entry.get("audiences", {}), f"{name}.audiences")
            clients[client_id] = {
                check_url(f"{name} audience", audience): AudienceGrant.from_json(
                    audience, grant, f"{name}.audiences[{audience!r}]"
                )
                for audience, grant in audiences.items()
            }
        return cls(clients)

    def as_json(self) -> dict[str, Any]:
        return {
            "clients": {
                client_id: {"audiences": {audience: grant.as_json() for audience, grant in audiences.items()}}
                for client_id, audiences in self.clients.items()
            }
        }

    def permit(self, tenant_id: str, client_id: str, audience: str, resource: str) -> AudienceGrant:
        """The grant covering this request; `invalid_target` (RFC 8693 §2.2.2) naming what is not allowed."""
        audiences = self.clients.get(client_id)
        if not audiences:
            raise OAuthError(
                "invalid_target",
                f"client {client_id!r} may not get ID-JAGs for users of tenant {tenant_id!r}",
            )
        grant = audiences.get(audience)
        if grant is None:
            raise OAuthError(
                "invalid_target",
                f"audience {audience!r} is not an authorization server client {client_id!r}"
                f" may get ID-JAGs for in tenant {tenant_id!r}",
            )
        if resource not in grant.resources:
            raise OAuthError(
                "invalid_target",
                f"resource {resource!r} is not allowed for client {client_id!r} at {audience!r}"
                f" in tenant {tenant_id!r}",
            )
        return grant


class IdJagPolicyStore:
    """The tenants' ID-JAG policies in the issuer's database (JSON text, one row per tenant)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        with db.transaction() as conn:
            conn.execute(_SCHEMA)

    def put(self, tenant_id: str, policy: IdJagPolicy) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO id_jag_policies (tenant_id, policy) VALUES (?, ?)",
                (tenant_id, json.dumps(policy.as_json())),
            )

    def get(self, tenant_id: str) -> IdJagPolicy | None:
        """The tenant's policy, None when none was ever set (which denies every ID-JAG)."""
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT policy FROM id_jag_policies WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()
        return None if row is None else IdJagPolicy.from_json(json.loads(row["policy"]))
