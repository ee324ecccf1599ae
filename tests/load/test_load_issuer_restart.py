"""The issuer restarted mid-run on the same port with the same database file.

Users, grants (revocations too) and signing keys survive; calls made while it is down fail with
a mapped, retriable `MCPTokenError` (never a raw transport exception); calls after it is back
succeed as the right user.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import jwt
import pytest
from load_support import TENANT, BusyRun, Host, bounded, call_tool, create_users, open_host, provider_for

import fake_enterprise
import fake_mcp_server
from client_runtime import MCPTokenError, TokenKey
from fake_enterprise import AdminAPIError, AdminClient
from harness.servers import ServedApp, bind_loopback, socket_url, start_in_thread

CALLS_BEFORE_RESTART = 15
CALLS_AFTER_RESTART = 15


def start_issuer(db_path: Path, secret: str, admin_secret: str, port: int = 0) -> ServedApp:
    sock = bind_loopback(port=port)
    try:
        settings = fake_enterprise.IssuerSettings(
            socket_url(sock), secret, admin_secret, db_path=str(db_path)
        )
        return start_in_thread(fake_enterprise.create_app(settings), sock)
    except BaseException:
        sock.close()
        raise


@dataclass
class Deployment:
    """An issuer on a file database, and an MCP server trusting it."""

    secret: str = field(repr=False)
    admin_secret: str = field(repr=False)
    db_path: Path
    issuer: ServedApp
    server_url: str

    def stop_issuer(self) -> None:
        self.issuer.stop()

    def start_issuer_again(self) -> None:
        """A new issuer app on the same port and database file (same URL, so the same `iss`)."""
        self.issuer = start_issuer(self.db_path, self.secret, self.admin_secret, self.issuer.port)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    secret, admin_secret = secrets.token_hex(16), secrets.token_hex(16)
    db_path = tmp_path / "issuer.db"
    issuer = start_issuer(db_path, secret, admin_secret)
    sock = bind_loopback()
    resource_url = socket_url(sock) + "/mcp"
    settings = fake_mcp_server.ServerSettings(issuer_url=issuer.url, resource_url=resource_url)
    server = start_in_thread(fake_mcp_server.create_app(settings), sock)
    running = Deployment(secret, admin_secret, db_path=db_path, issuer=issuer, server_url=resource_url)
    try:
        yield running
    finally:
        server.stop()
        running.issuer.stop()


@pytest.mark.anyio
async def test_issuer_restart_with_the_same_db_keeps_state_and_maps_in_flight_failures(
    deployment: Deployment,
) -> None:
    secret, server_url, issuer_url = deployment.secret, deployment.server_url, deployment.issuer.url
    user_ids = [f"survivor-{n:02d}" for n in range(12)]
    with AdminClient(issuer_url, deployment.admin_secret, inner_secret=secret) as admin:
        subjects = await anyio.to_thread.run_sync(create_users, admin, [*user_ids, "held", "revoked"])
        admin.revoke(TENANT, "revoked")
        admin.rotate_keys()  # one retired key and one current key, both to survive the restart
        kids_before = [key["kid"] for key in admin.jwks()["keys"]]
    provider = provider_for(server_url)

    answers: list[tuple[str, str]] = []
    mapped: list[MCPTokenError] = []
    unexpected: list[BaseException] = []
    busy = BusyRun(user_ids)
    down_call: list[BaseException] = []

    async with (
        open_host(issuer_url, secret, cache=False, issuer_timeout=2.0, retries=1, backoff=0.05) as minting,
        open_host(issuer_url, secret) as caching,
    ):
        held = await call_tool(caching.runtime, provider, "held", "whoami")
        assert held["sub"] == subjects["held"]

        async def whoami(host: Host, user_id: str) -> str:
            return str((await call_tool(host.runtime, provider, user_id, "whoami"))["sub"])

        async def call_as(user_id: str) -> None:
            try:
                answered, _ = await bounded(30, lambda: whoami(minting, user_id))
            except MCPTokenError as exc:
                mapped.append(exc)
                busy.report(False)
            except Exception as exc:  # anything unmapped is a failure of the runtime
                unexpected.append(exc)
                busy.report(False)
            else:
                answers.append((subjects[user_id], answered))
                busy.report(True)

        async def restarter() -> None:
            await busy.wait_for(CALLS_BEFORE_RESTART, True)
            await anyio.to_thread.run_sync(deployment.stop_issuer)
            # While the issuer is down a call that needs a token fails, mapped and retriable.
            try:
                await bounded(30, lambda: whoami(minting, user_ids[0]))
            except Exception as exc:
                down_call.append(exc)
            await anyio.to_thread.run_sync(deployment.start_issuer_again)
            await busy.wait_for(CALLS_AFTER_RESTART, True)

        await busy.run(restarter, call_as, workers=6, stride=2, seconds=60)

        held_again = await call_tool(caching.runtime, provider, "held", "whoami")
        held_token = caching.broker.cached(TokenKey(TENANT, "held", "account", server_url))

    assert unexpected == []
    assert answers and all(asked == answered for asked, answered in answers)
    for exc in mapped:
        assert type(exc) is MCPTokenError and exc.retriable
    assert len(down_call) == 1 and type(down_call[0]) is MCPTokenError and down_call[0].retriable
    assert held_again["sub"] == subjects["held"]

    with AdminClient(issuer_url, deployment.admin_secret, inner_secret=secret) as admin:
        # Keys survived: every kid is still published, the current one still signs, and a token
        # signed before the restart verifies against the JWKS served after it.
        jwks = admin.jwks()
        assert set(kids_before) <= {key["kid"] for key in jwks["keys"]}
        issued = admin.issue_token(TENANT, user_ids[0], server_url)
        assert jwt.get_unverified_header(issued["token"])["kid"] == kids_before[0]
        assert held_token is not None
        signer = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(held_token.token)["kid"]]
        claims = jwt.decode(held_token.token, signer, algorithms=[signer.algorithm_name], audience=server_url)
        assert claims["sub"] == subjects["held"]
        # Users and grants survived, revocations too.
        with pytest.raises(AdminAPIError) as exists:
            admin.create_user(TENANT, user_ids[0])
        assert exists.value.status == 409
        with pytest.raises(AdminAPIError) as revoked:
            admin.issue_token(TENANT, "revoked", server_url)
        assert (revoked.value.status, revoked.value.error) == (401, "refresh_rejected")
