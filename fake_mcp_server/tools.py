"""The reference server's tools: each one acts as the user whose verified token came with the call."""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

__all__ = ["Identity", "NoteBook", "Notes", "register_tools"]


class Identity(BaseModel):
    """Who the server is acting for, as the verified token says."""

    sub: str
    preferred_username: str | None = None
    email: str | None = None
    name: str | None = None
    tenant_id: str | None = None
    iss: str
    aud: str | list[str]
    exp: int


class Notes(BaseModel):
    notes: list[str]


# (iss, idp, sub): the issuer gives each person a `sub` unique within it, so (iss, sub) names one
# person. `idp` is set when our own authorization server issued the token for a user an IdP vouched
# for: the subject is then unique per IdP only. `tenant_id` and `preferred_username` are readable
# labels, never keys: a user id repeats across tenants.
Owner = tuple[str, str, str]


class NoteBook:
    """Per-user notes, in memory; a user only ever reaches their own list."""

    def __init__(self, max_notes_per_user: int, max_note_chars: int) -> None:
        self._max_notes = max_notes_per_user
        self._max_chars = max_note_chars
        self._notes: dict[Owner, list[str]] = {}

    def add(self, owner: Owner, text: str) -> list[str]:
        if not text.strip():
            raise ToolError("a note needs some text")
        if len(text) > self._max_chars:
            raise ToolError(f"a note holds at most {self._max_chars} characters")
        notes = self._notes.setdefault(owner, [])
        if len(notes) >= self._max_notes:
            raise ToolError(f"at most {self._max_notes} notes per user")
        notes.append(text)
        return list(notes)

    def list(self, owner: Owner) -> list[str]:
        return list(self._notes.get(owner, []))


def _verified_claims() -> dict[str, Any]:
    access_token = get_access_token()
    if access_token is None or not access_token.claims:
        # The bearer middleware admits no request without a verified token; never act anonymously.
        raise ToolError("no verified identity for this request")
    return access_token.claims


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _owner(claims: dict[str, Any]) -> Owner:
    return str(claims["iss"]), str(claims.get("idp", "")), str(claims["sub"])


def register_tools(server: MCPServer, notebook: NoteBook) -> None:
    """Add `whoami`, `add_note`, `list_notes` and `echo` to `server`."""

    @server.tool(structured_output=True)
    def whoami() -> Identity:
        """Return the identity the server verified for this call."""
        claims = _verified_claims()
        return Identity(
            sub=str(claims["sub"]),
            preferred_username=_text(claims.get("preferred_username")),
            email=_text(claims.get("email")),
            name=_text(claims.get("name")),
            tenant_id=_text(claims.get("tenant_id")),
            iss=str(claims["iss"]),
            aud=claims["aud"],
            exp=int(claims["exp"]),
        )

    @server.tool(structured_output=True)
    def add_note(text: str) -> Notes:
        """Add a note to your own notes; returns them all."""
        return Notes(notes=notebook.add(_owner(_verified_claims()), text))

    @server.tool(structured_output=True)
    def list_notes() -> Notes:
        """List your own notes (nobody else's)."""
        return Notes(notes=notebook.list(_owner(_verified_claims())))

    @server.tool()
    def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text
