"""What the issuer, console and OAuth tests share: a running issuer's handle, a starter that stops
every issuer it started, and a clock tests move by hand."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fake_enterprise import AdminClient, IssuerSettings, create_app
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread


@dataclasses.dataclass
class RunningIssuer:
    served: ServedApp
    settings: IssuerSettings

    @property
    def url(self) -> str:
        return self.served.url

    def admin(self) -> AdminClient:
        return AdminClient(self.url, self.settings.admin_secret, inner_secret=self.settings.secret)


StartIssuer = Callable[..., RunningIssuer]


class FakeClock:
    """A clock tests move by hand (key retirement, grant, code, token and session expiry)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def issuers(**defaults: Any) -> Iterator[StartIssuer]:
    """`start(**overrides)` runs an issuer with `defaults` and `overrides` as its settings
    (`issuer_url`, unless given, is where it listens); every issuer started is stopped on exit."""
    running: list[ServedApp] = []

    def start(**overrides: Any) -> RunningIssuer:
        sock = bind_loopback()
        settings = IssuerSettings(**{"issuer_url": socket_url(sock), **defaults, **overrides})
        try:
            served = start_in_thread(create_app(settings), sock)
        except BaseException:
            sock.close()
            raise
        running.append(served)
        return RunningIssuer(served, settings)

    try:
        yield start
    finally:
        for served in reversed(running):
            served.stop()
