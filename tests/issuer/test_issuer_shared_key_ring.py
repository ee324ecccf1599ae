"""One key ring, two processes' worth of issuer services on one database (as `--workers 2` runs it).

The services here share a process but not a connection or memory, which is all a worker has
of another: what one does reaches the other only through the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from issuer_support import ADMIN_SECRET, AUDIENCE, SECRET, FakeClock

from fake_enterprise import IssuerSettings
from fake_enterprise.directory import User
from fake_enterprise.faults import Faults
from fake_enterprise.service import IssuerService


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[IssuerService, IssuerService]]:
    settings = IssuerSettings(
        issuer_url="http://127.0.0.1:9000",
        secret=SECRET,
        admin_secret=ADMIN_SECRET,
        db_path=str(tmp_path / "shared.db"),
        alg="ES256",
        token_ttl=300,
        retired_key_grace=60,
        clock=clock,
    )
    first = IssuerService(settings)
    second = IssuerService(settings)
    try:
        yield first, second
    finally:
        second.close()
        first.close()


def _kids(service: IssuerService) -> list[str]:
    return [key["kid"] for key in service.jwks()["keys"]]


def _issue(service: IssuerService) -> dict[str, Any]:
    return service.issue_token(
        tenant_id="acme", user_id="alice", app_id="", audience=AUDIENCE, user_type="account"
    )


def test_a_rotation_by_one_is_used_by_the_other_on_its_next_signature(
    services: tuple[IssuerService, IssuerService],
) -> None:
    first, second = services
    first.create_user(User("acme", "alice"))
    first.put_grant("acme", "alice", refresh_token=None, expires_at=None)
    old_kid = _kids(second)[0]
    rotated = first.rotate_keys("EdDSA")
    header = jwt.get_unverified_header(_issue(second)["token"])
    assert (header["kid"], header["alg"]) == (rotated["kid"], "EdDSA")
    assert _kids(second) == [rotated["kid"], old_kid]
    again = second.rotate_keys(None)  # rotating from a view that was current a moment ago
    assert _kids(first) == [again["kid"], rotated["kid"], old_kid]
    assert jwt.get_unverified_header(_issue(first)["token"])["kid"] == again["kid"]


def test_a_retired_key_stays_published_while_a_token_another_signed_lives(
    services: tuple[IssuerService, IssuerService], clock: FakeClock
) -> None:
    first, second = services
    first.create_user(User("acme", "alice"))
    first.put_grant("acme", "alice", refresh_token=None, expires_at=None)
    token = _issue(second)  # only the second service signs with the first key
    signed_kid = jwt.get_unverified_header(token["token"])["kid"]
    current_kid = first.rotate_keys(None)["kid"]
    clock.now += 61
    assert _kids(first) == [current_kid, signed_kid], "past the grace of a key the first never used"
    clock.now = token["expires_at"] + 59
    assert _kids(first) == [current_kid, signed_kid]
    clock.now = token["expires_at"] + 61
    assert _kids(second) == [current_kid], "the signer knows its exact mark"
    assert _kids(first) == [current_kid], "the deletion reaches the other"


def test_faults_set_by_one_are_in_force_for_the_other(services: tuple[IssuerService, IssuerService]) -> None:
    first, second = services
    assert second.faults.current == Faults()
    first.faults.set(Faults(issue_token_status=503, jwks_unavailable=True))
    assert second.faults.current == Faults(issue_token_status=503, jwks_unavailable=True)
    first.faults.clear()
    assert second.faults.current == Faults()
