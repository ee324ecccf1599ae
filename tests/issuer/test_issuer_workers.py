"""`mcp-idfwd issuer --workers N`: real worker processes on one port, one database, one key ring.

Every check runs over many keep-alive connections at once, and first shows that the connections
landed on every worker (each worker holds some of them open), so "every answer" means "every
worker's answer".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from issuer_support import ADMIN_SECRET, AUDIENCE, ISSUE_PATH, SECRET

from fake_enterprise import AdminClient

CONNECTIONS = 24
ENV = {**os.environ, "MCP_IDFWD_ISSUER_SECRET": SECRET, "MCP_IDFWD_ADMIN_SECRET": ADMIN_SECRET}


@dataclass
class Workers:
    process: subprocess.Popen[str]
    url: str
    pids: list[int]
    db: Path

    def admin(self) -> AdminClient:
        return AdminClient(self.url, ADMIN_SECRET, inner_secret=SECRET)


def _announced(process: subprocess.Popen[str]) -> dict[str, str]:
    printed: dict[str, str] = {}
    assert process.stdout is not None
    while "workers" not in printed:  # the last line before serving
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"issuer exited early: {process.communicate(timeout=10)[1]}")
        name, _, value = line.partition(":")
        printed[name.strip()] = value.strip()
    return printed


@contextmanager
def _workers(db: Path, *args: str) -> Iterator[Workers]:
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "issuer", "--port", "0", "--db", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    # A process that never prints would block readline(): kill it after a generous while.
    watchdog = threading.Timer(90, process.kill)
    watchdog.start()
    try:
        printed = _announced(process)
        watchdog.cancel()
        pids = [int(pid) for pid in printed["workers"].split("pids", 1)[1].split()]
        yield Workers(process, printed["issuer"], pids, db)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """The pids still alive after waiting (bounded) for them to exit."""
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a bounded exit condition, not synchronisation
    return alive


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            name = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile (by another thread): not an open connection
            continue
        if name.startswith("socket:["):
            inodes.add(int(name[len("socket:[") : -1]))
    return inodes


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _tcp_connections() -> list[tuple[int, int, int]]:
    """(local port, remote port, socket inode) of every IPv4 TCP socket on this machine."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return [(_port(row[1]), _port(row[2]), int(row[9])) for row in rows]


def _our_ports_to(port: int) -> set[int]:
    """The local ports of this process's open connections to `port`."""
    ours = _socket_inodes(os.getpid())
    return {local for local, remote, inode in _tcp_connections() if remote == port and inode in ours}


def _held_by_worker(workers: Workers, client_ports: set[int]) -> dict[int, int]:
    """How many of the connections from `client_ports` each worker has accepted and holds open."""
    port = int(workers.url.rsplit(":", 1)[1])
    accepted = {inode for local, peer, inode in _tcp_connections() if local == port and peer in client_ports}
    return {pid: len(_socket_inodes(pid) & accepted) for pid in workers.pids}


@contextmanager
def _spread_connections(workers: Workers) -> Iterator[list[httpx.Client]]:
    """CONNECTIONS open keep-alive connections, shown to be spread over every worker.

    Each connection is matched to the worker holding its other end (by socket inode), so
    connections of earlier tests that the workers have yet to close are not counted."""
    port = int(workers.url.rsplit(":", 1)[1])
    already_open = _our_ports_to(port)
    with ExitStack() as stack:
        clients = [
            stack.enter_context(httpx.Client(base_url=workers.url, timeout=10.0)) for _ in range(CONNECTIONS)
        ]
        for client in clients:
            assert client.get("/.well-known/openid-configuration").status_code == 200
        client_ports = _our_ports_to(port) - already_open
        assert len(client_ports) == CONNECTIONS
        held = _held_by_worker(workers, client_ports)
        assert all(count >= 1 for count in held.values()), f"connections per worker: {held}"
        assert sum(held.values()) == CONNECTIONS
        yield clients


def _issue(client: httpx.Client, tenant: str = "acme") -> httpx.Response:
    body = {"tenant_id": tenant, "user_id": "alice", "app_id": "", "audience": AUDIENCE}
    return client.post(ISSUE_PATH, json=body, headers={"Enterprise-Api-Secret-Key": SECRET})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "workers.db"


@pytest.fixture(scope="module")
def shared_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Two workers for the tests that leave the issuer as they found it (own tenants, faults cleared)."""
    db = tmp_path_factory.mktemp("workers") / "shared.db"
    with _workers(db, "--workers", "2", "--alg", "ES256") as workers:
        yield workers


@contextmanager
def _started(sharing: str, db: Path, shared_workers: Workers) -> Iterator[Workers]:
    if sharing == "reuseport":  # the default: the module's workers serve that way
        yield shared_workers
    else:
        with _workers(db, "--workers", "2", "--alg", "ES256", "--socket-sharing", sharing) as workers:
            yield workers


@pytest.mark.parametrize("sharing", ["reuseport", "shared"])
def test_a_rotation_is_seen_by_every_worker_on_its_next_request(
    db: Path, shared_workers: Workers, sharing: str
) -> None:
    with _started(sharing, db, shared_workers) as workers:
        with workers.admin() as admin:
            admin.create_user("rotation", "alice")
            admin.grant("rotation", "alice")
            with _spread_connections(workers) as clients:
                for client in clients:  # every worker has signed with the current key
                    assert _issue(client, "rotation").status_code == 200
                old_kid = admin.jwks()["keys"][0]["kid"]
                new_kid = admin.rotate_keys("EdDSA")
                tokens = []
                for client in clients:
                    jwks = client.get("/.well-known/jwks.json").json()
                    assert [key["kid"] for key in jwks["keys"]][:2] == [new_kid, old_kid]
                    answer = _issue(client, "rotation")
                    assert answer.status_code == 200
                    tokens.append(answer.json()["token"])
                keys = jwt.PyJWKSet.from_dict(admin.jwks())
        for token in tokens:
            header = jwt.get_unverified_header(token)
            assert (header["kid"], header["alg"]) == (new_kid, "EdDSA")
            claims = jwt.decode(token, keys[new_kid].key, algorithms=["EdDSA"], audience=AUDIENCE)
            assert claims["preferred_username"] == "alice"


def test_grants_revocations_and_policies_are_seen_by_every_worker(shared_workers: Workers) -> None:
    with shared_workers.admin() as admin, _spread_connections(shared_workers) as clients:
        admin.create_user("grants", "alice")
        assert {_issue(client, "grants").status_code for client in clients} == {428}
        admin.grant("grants", "alice")
        assert {_issue(client, "grants").status_code for client in clients} == {200}
        admin.revoke("grants", "alice")
        answers = [_issue(client, "grants") for client in clients]
        assert {(answer.status_code, answer.json()["error"]) for answer in answers} == {
            (401, "refresh_rejected")
        }
        admin.grant("grants", "alice")
        admin.set_policy("grants", deny=True)
        assert {_issue(client, "grants").status_code for client in clients} == {403}


def test_faults_are_seen_by_every_worker(shared_workers: Workers) -> None:
    with shared_workers.admin() as admin, _spread_connections(shared_workers) as clients:
        admin.create_user("faults", "alice")
        admin.grant("faults", "alice")
        try:
            admin.set_faults(issue_token_status=503, jwks_unavailable=True)
            assert {_issue(client, "faults").status_code for client in clients} == {503}
            assert {client.get("/.well-known/jwks.json").status_code for client in clients} == {503}
        finally:
            admin.clear_faults()
        assert {_issue(client, "faults").status_code for client in clients} == {200}
        assert {client.get("/.well-known/jwks.json").status_code for client in clients} == {200}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_supervisor_and_every_worker(db: Path, signum: int) -> None:
    with _workers(db, "--workers", "2") as workers:
        assert all(_alive(pid) for pid in workers.pids)
        workers.process.send_signal(signum)
        assert workers.process.wait(timeout=30) == 0
        assert _wait_gone(workers.pids) == []


def test_workers_die_with_a_killed_supervisor(db: Path) -> None:
    with _workers(db, "--workers", "2") as workers:
        workers.process.kill()
        workers.process.wait(timeout=10)
        assert _wait_gone(workers.pids) == [], "orphaned workers"
    # The lock went with the supervisor: a new issuer can take the database.
    with _workers(db, "--workers", "2") as again, again.admin() as admin:
        assert admin.jwks()["keys"]


def test_a_second_issuer_on_the_same_database_is_refused_in_one_line(shared_workers: Workers) -> None:
    # Refused at the lock, before it opens the database: the module's workers are left as they were.
    db = shared_workers.db
    second = subprocess.run(
        [sys.executable, "-m", "harness", "issuer", "--port", "0", "--db", str(db)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert second.returncode == 1
    # The supervisor holds the lock, never a worker: the refusal names the supervisor's pid.
    assert second.stderr.strip().splitlines() == [
        f"mcp-idfwd issuer: database {db} is in use by another issuer (process {shared_workers.process.pid}"
        f" holds {db}.lock); stop it, or give this issuer a database of its own"
    ]
    assert all(_alive(pid) for pid in shared_workers.pids)


def test_workers_without_a_database_file_are_refused_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness", "issuer", "--port", "0", "--workers", "2"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "mcp-idfwd issuer: --workers needs --db FILE (the workers share one database)"
    )
