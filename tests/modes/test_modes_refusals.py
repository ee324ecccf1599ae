"""Every refusal of the token_exchange and id_jag modes reaches the host as its named exception,
before anything is sent to the MCP server as anyone. Real IdP and servers on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import jwt
import pytest
from modes_support import FailingTransport, exchanges_of, whoami

from client_runtime import (
    AuthorizationServerClient,
    IdentityMode,
    IdJagSource,
    IdpClientSettings,
    IdpTokenExchange,
    IdTokenSource,
    MCPIdentityRefreshError,
    MCPIssuerConfigError,
    MCPMissingUserError,
    MCPNoRefreshTokenError,
    MCPTokenError,
    MCPToolRuntime,
    TokenBroker,
    TokenExchangeSource,
)
from harness.id_tokens import SignInIdTokens
from harness.servers import bind_loopback, socket_url
from harness.stack import LocalStack, StackUser

pytestmark = pytest.mark.anyio


def _closed_port_url() -> str:
    sock = bind_loopback()
    url = socket_url(sock)
    sock.close()
    return url


def _idp_settings(stack: LocalStack, **overrides: object) -> IdpClientSettings:
    host = stack.host_client()
    fields: dict[str, object] = {
        "token_endpoint": host.token_endpoint,
        "client_id": host.client_id,
        "client_secret": host.client_secret,
        "retries": 0,
        **overrides,
    }
    return IdpClientSettings(**fields)  # type: ignore[arg-type]


@asynccontextmanager
async def _runtime(
    stack: LocalStack,
    *,
    idp: IdpClientSettings | None = None,
    id_tokens: IdTokenSource | None = None,
    as_client: AuthorizationServerClient | None = None,
    as_http: httpx2.AsyncClient | None = None,
) -> AsyncIterator[tuple[MCPToolRuntime, IdJagSource]]:
    """A runtime in both modes, built from parts a test may replace."""
    stack.allow_id_jag()
    id_tokens = id_tokens or SignInIdTokens(stack.host_client())
    async with IdpTokenExchange(idp or _idp_settings(stack)) as exchange:
        servers = {stack.id_jag_server_url: as_client or stack.id_jag_client}
        source = IdJagSource(exchange, id_tokens, servers, http_client=as_http)
        async with MCPToolRuntime(
            token_exchange_broker=TokenBroker(TokenExchangeSource(exchange, id_tokens)),
            id_jag_broker=TokenBroker(source),
        ) as runtime:
            yield runtime, source


def _providers(stack: LocalStack, tenant: str = "acme") -> dict[IdentityMode, object]:
    return {
        IdentityMode.TOKEN_EXCHANGE: stack.provider(tenant, identity_mode="token_exchange"),
        IdentityMode.ID_JAG: stack.provider(
            tenant, identity_mode="id_jag", server_url=stack.id_jag_server_url
        ),
    }


MODES = (IdentityMode.TOKEN_EXCHANGE, IdentityMode.ID_JAG)


def _mcp_calls(stack: LocalStack, mark: int) -> list[str]:
    return [call.describe() for call in stack.calls.since(mark) if call.path.endswith("/mcp")]


@pytest.mark.parametrize("mode", MODES)
async def test_no_user_is_refused_before_any_io(stack: LocalStack, mode: IdentityMode) -> None:
    async with _runtime(stack) as (runtime, _):
        mark = len(stack.calls)
        with pytest.raises(MCPMissingUserError):
            await runtime.invoke(_providers(stack)[mode], "whoami", {}, tenant_id="acme", user_id=None)  # type: ignore[arg-type]
        assert stack.calls.since(mark) == []


@pytest.mark.parametrize("mode", MODES)
async def test_end_user_type_is_refused_before_any_io(stack: LocalStack, mode: IdentityMode) -> None:
    user = stack.new_user()
    async with _runtime(stack) as (runtime, _):
        mark = len(stack.calls)
        with pytest.raises(MCPTokenError, match="signed-in accounts only"):
            await runtime.invoke(
                _providers(stack)[mode],  # type: ignore[arg-type]
                "whoami",
                {},
                tenant_id="acme",
                user_id=user.user_id,
                user_type="end_user",
            )
        assert stack.calls.since(mark) == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_runtime_without_the_mode_broker_refuses_with_a_config_error(
    stack: LocalStack, mode: IdentityMode
) -> None:
    user = stack.new_user()
    async with MCPToolRuntime() as runtime:
        with pytest.raises(MCPIssuerConfigError, match=f"{mode.value} mode needs a TokenBroker"):
            await runtime.invoke(
                _providers(stack)[mode],
                "whoami",
                {},
                tenant_id="acme",
                user_id=user.user_id,  # type: ignore[arg-type]
            )


@pytest.mark.parametrize("mode", MODES)
async def test_bad_client_secret_at_the_idp_is_an_issuer_config_error(
    stack: LocalStack, mode: IdentityMode
) -> None:
    user = stack.new_user()
    idp = _idp_settings(stack, client_secret="not-the-secret")
    async with _runtime(stack, idp=idp) as (runtime, _):
        mark = len(stack.calls)
        with pytest.raises(MCPIssuerConfigError) as caught:
            await whoami(runtime, _providers(stack)[mode], user)  # type: ignore[arg-type]
        assert caught.value.error_code == "invalid_client" and caught.value.status_code == 401
        assert not caught.value.retriable
        assert "not-the-secret" not in str(caught.value)
        assert _mcp_calls(stack, mark) == []


@pytest.mark.parametrize("mode", MODES)
async def test_revoked_sso_grant_is_an_identity_refresh_error(stack: LocalStack, mode: IdentityMode) -> None:
    user = stack.new_user()
    id_tokens = SignInIdTokens(stack.host_client())
    await id_tokens(user.tenant_id, user.user_id)  # signed in; the host holds the ID token
    stack.admin.revoke(user.tenant_id, user.user_id)
    async with _runtime(stack, id_tokens=id_tokens) as (runtime, _):
        mark = len(stack.calls)
        with pytest.raises(MCPIdentityRefreshError) as caught:
            await whoami(runtime, _providers(stack)[mode], user)  # type: ignore[arg-type]
        assert caught.value.error_code == "invalid_grant" and not caught.value.retriable
        assert _mcp_calls(stack, mark) == []


@pytest.mark.parametrize("mode", MODES)
async def test_expired_id_token_is_an_identity_refresh_error(stack: LocalStack, mode: IdentityMode) -> None:
    user = stack.new_user()
    genuine = await SignInIdTokens(stack.host_client())(user.tenant_id, user.user_id)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    now = int(time.time())
    expired = stack.admin.mint(
        {**claims, "iat": now - 7200, "exp": now - 3600}, header=dict(jwt.get_unverified_header(genuine))
    )

    async def stale_session(tenant_id: str, user_id: str) -> str:
        return expired

    async with _runtime(stack, id_tokens=stale_session) as (runtime, _):
        with pytest.raises(MCPIdentityRefreshError) as caught:
            await whoami(runtime, _providers(stack)[mode], user)  # type: ignore[arg-type]
        assert caught.value.error_code == "invalid_grant"


@pytest.mark.parametrize("mode", MODES)
async def test_tenant_policy_denial_is_an_identity_refresh_error(
    stack: LocalStack, mode: IdentityMode
) -> None:
    tenant = f"denied-{mode.value}"
    user = stack.new_user(tenant)
    stack.allow_id_jag(tenant)
    id_tokens = SignInIdTokens(stack.host_client())
    await id_tokens(tenant, user.user_id)  # signed in before the tenant was denied
    stack.admin.set_policy(tenant, deny=True)
    async with _runtime(stack, id_tokens=id_tokens) as (runtime, _):
        with pytest.raises(MCPIdentityRefreshError) as caught:
            await whoami(runtime, _providers(stack, tenant)[mode], user)  # type: ignore[arg-type]
    assert caught.value.error_code in ("invalid_grant", "access_denied")


async def test_id_jag_not_allowed_for_the_tenant_is_refused_without_retry(stack: LocalStack) -> None:
    tenant = "no-id-jag-policy"
    user = stack.new_user(tenant)
    async with _runtime(stack) as (runtime, _):
        with pytest.raises(MCPIdentityRefreshError) as caught:
            await whoami(runtime, _providers(stack, tenant)[IdentityMode.ID_JAG], user)  # type: ignore[arg-type]
    assert caught.value.status_code == 400 and not caught.value.retriable
    assert caught.value.error_code == "invalid_target"


async def test_id_token_source_failures_fail_closed(stack: LocalStack) -> None:
    user = stack.new_user()

    async def broken(tenant_id: str, user_id: str) -> str:
        raise RuntimeError("session store down: secret=hunter2")

    async def not_signed_in(tenant_id: str, user_id: str) -> str:
        raise MCPNoRefreshTokenError("no SSO session")

    for mode in MODES:
        async with _runtime(stack, id_tokens=broken) as (runtime, _):
            with pytest.raises(MCPTokenError, match="ID token source failed") as caught:
                await whoami(runtime, _providers(stack)[mode], user)  # type: ignore[arg-type]
            assert "hunter2" not in str(caught.value) and caught.value.__cause__ is None
        async with _runtime(stack, id_tokens=not_signed_in) as (runtime, _):
            with pytest.raises(MCPNoRefreshTokenError):
                await whoami(runtime, _providers(stack)[mode], user)  # type: ignore[arg-type]


async def test_unknown_user_at_sign_in_is_no_refresh_token(stack: LocalStack) -> None:
    async with _runtime(stack) as (runtime, _):
        ghost = StackUser("acme", "nobody-here")
        with pytest.raises(MCPNoRefreshTokenError):
            await whoami(runtime, _providers(stack)[IdentityMode.TOKEN_EXCHANGE], ghost)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
async def test_idp_5xx_is_a_retriable_token_error(stack: LocalStack, mode: IdentityMode) -> None:
    user = stack.new_user()
    id_tokens = SignInIdTokens(stack.host_client())
    await id_tokens(user.tenant_id, user.user_id)
    stack.admin.set_faults(issue_token_status=503)
    try:
        async with _runtime(stack, id_tokens=id_tokens) as (runtime, _):
            with pytest.raises(MCPTokenError) as caught:
                await whoami(runtime, _providers(stack)[mode], user)  # type: ignore[arg-type]
    finally:
        stack.admin.clear_faults()
    assert type(caught.value) is MCPTokenError and caught.value.status_code == 503
    assert caught.value.retriable


async def test_unreachable_idp_is_a_retriable_token_error(stack: LocalStack) -> None:
    user = stack.new_user()
    idp = _idp_settings(stack, token_endpoint=_closed_port_url() + "/token")
    for mode in MODES:
        async with _runtime(stack, idp=idp) as (runtime, _):
            with pytest.raises(MCPTokenError, match="could not reach") as caught:
                await whoami(runtime, _providers(stack)[mode], user)  # type: ignore[arg-type]
        assert caught.value.retriable


async def test_bad_client_secret_at_the_authorization_server_is_an_issuer_config_error(
    stack: LocalStack,
) -> None:
    user = stack.new_user()
    genuine = stack.id_jag_client
    wrong = AuthorizationServerClient(genuine.issuer, genuine.client_id, "not-the-secret")
    async with _runtime(stack, as_client=wrong) as (runtime, source):
        with pytest.raises(MCPIssuerConfigError) as caught:
            await whoami(runtime, _providers(stack)[IdentityMode.ID_JAG], user)  # type: ignore[arg-type]
    assert caught.value.error_code == "invalid_client" and "not-the-secret" not in str(caught.value)
    assert source.pending_grants == 0  # a refused ID-JAG is not kept


async def test_an_issuer_that_is_not_the_servers_authorization_server_is_a_config_error(
    stack: LocalStack,
) -> None:
    user = stack.new_user()
    genuine = stack.id_jag_client
    # The IdP's own metadata names the IdP as issuer, not the configured one: refused before any grant.
    elsewhere = AuthorizationServerClient(
        stack.issuer_url + "/elsewhere", genuine.client_id, genuine.client_secret
    )
    async with _runtime(stack, as_client=elsewhere) as (runtime, _):
        mark = len(stack.calls)
        with pytest.raises(MCPIssuerConfigError, match="configured issuer"):
            await whoami(runtime, _providers(stack)[IdentityMode.ID_JAG], user)  # type: ignore[arg-type]
    assert exchanges_of(stack, user, "id-jag") == 0 and _mcp_calls(stack, mark) == []


async def test_a_server_without_a_configured_client_is_a_config_error(stack: LocalStack) -> None:
    user = stack.new_user()
    async with _runtime(stack) as (runtime, _):
        provider = stack.provider(identity_mode="id_jag")  # the default server: no client configured
        with pytest.raises(MCPIssuerConfigError, match="no authorization-server client"):
            await whoami(runtime, provider, user)


async def test_an_unanswered_redemption_keeps_the_id_jag_for_the_next_try(stack: LocalStack) -> None:
    user = stack.new_user()
    transport = FailingTransport(
        lambda request: request.method == "POST" and request.url.path == "/token", status=503
    )
    async with (
        httpx2.AsyncClient(transport=transport) as as_http,
        _runtime(stack, as_http=as_http) as (runtime, source),
    ):
        provider = _providers(stack)[IdentityMode.ID_JAG]
        with pytest.raises(MCPTokenError) as caught:
            await whoami(runtime, provider, user)  # type: ignore[arg-type]
        assert caught.value.retriable and caught.value.status_code == 503
        assert source.pending_grants == 1
        transport.fails = lambda request: False
        assert (await whoami(runtime, provider, user))["sub"] == user.sub  # type: ignore[arg-type]
        assert source.pending_grants == 0
    assert transport.failed == 1
    assert exchanges_of(stack, user, "id-jag") == 1  # the second try presented the same ID-JAG
