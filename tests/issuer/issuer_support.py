"""Shared helpers for the issuer's tests (constants, a running issuer handle, a hand-moved clock)."""

from __future__ import annotations

from issuer_fixtures import FakeClock, RunningIssuer, StartIssuer  # noqa: F401 (re-exported)

SECRET = "issuer-test-secret-4f1c"
ADMIN_SECRET = "issuer-test-admin-secret-9b2e"
INNER_AUTH = {"Enterprise-Api-Secret-Key": SECRET}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}
AUDIENCE = "http://127.0.0.1:8765/mcp"
ISSUE_PATH = "/inner/api/mcp/issue-token"
