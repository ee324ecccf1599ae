import socket

import httpx
import jwt
import pytest

from fake_enterprise import AdminAPIError, AdminClient
from harness.servers import bind_loopback
from harness.stack import LocalStack, StackSettings


def _free_port() -> int:
    with bind_loopback() as sock:
        return sock.getsockname()[1]


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_stack_runs_on_the_given_ports_and_frees_them_on_stop() -> None:
    issuer_port, server_port = _free_port(), _free_port()
    settings = StackSettings(issuer_port=issuer_port, server_port=server_port, alg="ES256", token_ttl=60)
    stack = LocalStack(settings)
    with stack:
        assert stack.issuer_url == f"http://127.0.0.1:{issuer_port}"
        assert stack.server_url == f"http://127.0.0.1:{server_port}/mcp"
        assert httpx.get(f"{stack.issuer_url}/.well-known/jwks.json").json()["keys"][0]["kty"] == "EC"
        user = stack.new_user("acme")
        token = stack.admin.issue_token("acme", user.user_id, stack.server_url)["token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert (jwt.get_unverified_header(token)["alg"], claims["exp"] - claims["iat"]) == ("ES256", 60)
        assert stack.secret not in repr(stack) and stack.admin_secret not in repr(stack)
    assert not stack.running
    assert not _accepts_connections(issuer_port) and not _accepts_connections(server_port)
    stack.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        _ = stack.server_url


def test_the_stack_uses_the_secrets_it_is_given() -> None:
    with LocalStack(StackSettings(secret="inner-given", admin_secret="admin-given")) as stack:
        assert (stack.secret, stack.admin_secret) == ("inner-given", "admin-given")
        with AdminClient(stack.issuer_url, "admin-given") as admin:
            assert admin.rotate_keys()
        with AdminClient(stack.issuer_url, "inner-given") as inner_only, pytest.raises(AdminAPIError):
            inner_only.rotate_keys()


def test_issuer_alone_then_server_on_demand() -> None:
    stack = LocalStack()
    try:
        stack.start_issuer()
        with pytest.raises(RuntimeError, match="MCP server is not running"):
            _ = stack.server_url
        stack.start_server()
        assert httpx.post(stack.server_url, json={}).status_code == 401
    finally:
        stack.stop()


def test_a_port_in_use_fails_start_and_leaves_nothing_running() -> None:
    with bind_loopback() as taken:
        busy = taken.getsockname()[1]
        issuer_port = _free_port()
        stack = LocalStack(StackSettings(issuer_port=issuer_port, server_port=busy))
        with pytest.raises(OSError):
            stack.start()
    assert not stack.running
    assert not _accepts_connections(issuer_port)


def test_new_users_never_collide_and_carry_a_grant() -> None:
    with LocalStack() as stack:
        first, second = stack.new_user("acme"), stack.new_user("acme")
        assert first.user_id != second.user_id
        assert stack.admin.issue_token("acme", first.user_id, stack.server_url)["token_type"] == "Bearer"
        without = stack.new_user("acme", grant=False)
        assert not without.has_grant
