"""What the console page shows: the issuer's state, read in one go (in a worker thread)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fake_enterprise.directory import Grant, TenantPolicy, User
from fake_enterprise.faults import Faults
from fake_enterprise.service import IssuerService
from fake_enterprise.token_events import TokenEvent

__all__ = ["Account", "KeyRow", "Overview", "Tenant", "read_overview"]

_LISTED_USERS = 500
_LISTED_EVENTS = 100


@dataclass(frozen=True)
class Account:
    user: User
    grant_state: str  # "active" | "expired" | "revoked" | "none"
    grant: Grant | None


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    policy: TenantPolicy
    policy_set: bool
    accounts: list[Account] = field(default_factory=list)


@dataclass(frozen=True)
class KeyRow:
    kid: str
    alg: str
    created_at: int
    retired_at: int | None
    current: bool


@dataclass(frozen=True)
class Overview:
    tenants: list[Tenant]
    events: list[TokenEvent]
    keys: list[KeyRow]
    faults: Faults
    clients: list[dict[str, Any]]
    now: float


def _grant_state(grant: Grant | None, now: float) -> str:
    if grant is None:
        return "none"
    if grant.revoked_at is not None:
        return "revoked"
    if grant.expires_at is not None and grant.expires_at <= now:
        return "expired"
    return "active"


def read_overview(service: IssuerService) -> Overview:
    now = service.settings.clock()
    policies = service.directory.policies()
    tenants: dict[str, Tenant] = {
        tenant_id: Tenant(tenant_id, policy, policy_set=True) for tenant_id, policy in policies.items()
    }
    for user, grant in service.directory.accounts(_LISTED_USERS):
        tenant = tenants.get(user.tenant_id)
        if tenant is None:
            tenant = tenants[user.tenant_id] = Tenant(user.tenant_id, TenantPolicy(), policy_set=False)
        tenant.accounts.append(Account(user, _grant_state(grant, now), grant))
    published = service.keyring.published()
    keys = [
        KeyRow(key.kid, key.alg, key.created_at, key.retired_at, current=index == 0)
        for index, key in enumerate(published)
    ]
    return Overview(
        tenants=[tenants[name] for name in sorted(tenants)],
        events=service.events.recent(_LISTED_EVENTS),
        keys=keys,
        faults=service.faults.current,
        clients=service.oauth.list_clients()["clients"],
        now=now,
    )
