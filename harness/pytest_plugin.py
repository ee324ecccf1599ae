"""pytest plugin (entry point `pytest11: idfwd`): a running issuer and MCP server as fixtures.

Installed with `mcp-idfwd`, so a test needs no import to use them:

- `idfwd_issuer` (session): the running issuer, with `.url`, `.secret` (the inner secret hosts send
  as `Enterprise-Api-Secret-Key`), `.admin_secret` (opens the admin API) and `.admin` (an
  `AdminClient` holding both).
- `idfwd_mcp_server` (session): the reference MCP server trusting that issuer, with `.url`
  (its MCP endpoint and resource URL) and `.issuer_url`.
- `idfwd_stack` (session): both, as a `harness.stack.LocalStack` with helpers: `new_user()`,
  `create_user(...)`, `provider()`, `open_runtime()`, `admin`, `issuer_url`, `server_url`, `secret`,
  `admin_secret`.
- `idfwd_user` (function): a fresh user with an SSO grant in tenant "acme".
- `idfwd_runtime` (function, async): an `MCPToolRuntime` whose tokens come from the stack's
  issuer. It is an async fixture: use it from `@pytest.mark.anyio` tests (anyio's pytest
  plugin, installed with `mcp`), which run it on the test's own event loop.

The servers start on free loopback ports the first time a test asks for them and stop at the
end of the session. Override the `idfwd_stack_settings` fixture to choose the algorithm, the
token lifetime or fixed ports. The project modules are imported only when a fixture is used,
so merely having the plugin installed costs nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from client_runtime import MCPToolRuntime
    from fake_enterprise import AdminClient
    from harness.stack import LocalStack, StackSettings, StackUser


@dataclass(frozen=True)
class IssuerHandle:
    """The running issuer: its URL, its inner secret, its admin secret and an admin client."""

    url: str
    secret: str = field(repr=False)
    admin: AdminClient
    admin_secret: str = field(repr=False)


@dataclass(frozen=True)
class MCPServerHandle:
    """The running MCP server: `url` is its MCP endpoint, also the audience of its tokens."""

    url: str
    issuer_url: str


@pytest.fixture(scope="session")
def idfwd_stack_settings() -> StackSettings:
    """How the session's stack runs; override this fixture to change it."""
    from harness.stack import StackSettings

    return StackSettings()


@pytest.fixture(scope="session")
def _idfwd_local_stack(idfwd_stack_settings: StackSettings) -> Iterator[LocalStack]:
    from harness.stack import LocalStack

    stack = LocalStack(idfwd_stack_settings)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def idfwd_issuer(_idfwd_local_stack: LocalStack) -> IssuerHandle:
    stack = _idfwd_local_stack.start_issuer()
    return IssuerHandle(
        url=stack.issuer_url, secret=stack.secret, admin=stack.admin, admin_secret=stack.admin_secret
    )


@pytest.fixture(scope="session")
def idfwd_mcp_server(_idfwd_local_stack: LocalStack) -> MCPServerHandle:
    stack = _idfwd_local_stack.start_server()
    return MCPServerHandle(url=stack.server_url, issuer_url=stack.issuer_url)


@pytest.fixture(scope="session")
def idfwd_stack(_idfwd_local_stack: LocalStack) -> LocalStack:
    return _idfwd_local_stack.start()


@pytest.fixture
def idfwd_user(idfwd_stack: LocalStack) -> StackUser:
    return idfwd_stack.new_user("acme")


@pytest.fixture
async def idfwd_runtime(idfwd_stack: LocalStack, anyio_backend: Any) -> AsyncIterator[MCPToolRuntime]:
    async with idfwd_stack.open_runtime() as runtime:
        yield runtime
