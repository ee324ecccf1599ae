"""Shared helpers for the issuer's tests (constants, a running issuer handle, a hand-moved clock)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fake_enterprise import AdminClient, IssuerSettings
from harness.servers import ServedApp

SECRET = "issuer-test-secret-4f1c"
ADMIN_SECRET = "issuer-test-admin-secret-9b2e"
INNER_AUTH = {"Enterprise-Api-Secret-Key": SECRET}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}
AUDIENCE = "http://127.0.0.1:8765/mcp"
ISSUE_PATH = "/inner/api/mcp/issue-token"


@dataclasses.dataclass
class RunningIssuer:
    served: ServedApp
    settings: IssuerSettings

    @property
    def url(self) -> str:
        return self.served.url

    def admin(self) -> AdminClient:
        return AdminClient(self.url, self.settings.admin_secret, inner_secret=self.settings.secret)


class FakeClock:
    """A clock tests move by hand (for key retirement and grant expiry)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


StartIssuer = Callable[..., RunningIssuer]
