"""Secrets the harness makes up when none is given (contract C3)."""

from __future__ import annotations

import secrets

__all__ = ["new_secret"]


def new_secret() -> str:
    """48 lowercase hex characters (192 bits).

    Hex, not `token_urlsafe`: a secret that starts with `-` reads as an option on a command
    line (`--secret -x...` fails to parse), and hex never does, nor needs shell quoting.
    """
    return secrets.token_hex(24)
