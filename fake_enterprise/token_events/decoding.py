"""Reading a JWS compact token's header and claims without checking it (for the record only)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["decode_unverified", "decoded_parts"]


def _b64url_text(part: str) -> str:
    padded = part + "=" * (-len(part) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii")).decode()


def decoded_parts(token: str) -> tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]] | None:
    """The JSON text and value of a JWS compact token's header and of its claims, or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        texts = _b64url_text(parts[0]), _b64url_text(parts[1])
        header, claims = json.loads(texts[0]), json.loads(texts[1])
    except (ValueError, UnicodeError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return (texts[0], header), (texts[1], claims)


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims of a JWS compact token (the signature is ignored), or None if it is not one."""
    decoded = decoded_parts(token)
    return None if decoded is None else (decoded[0][1], decoded[1][1])
