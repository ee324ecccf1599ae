"""Strict request bodies: bounded size, JSON objects only, known fields of the right types."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, NoReturn
from urllib.parse import urlsplit

from starlette.requests import Request

from fake_enterprise.errors import IssuerError

__all__ = ["Body", "check_identifier", "check_url", "read_json_object"]

MAX_IDENTIFIER_LENGTH = 256
MAX_URL_LENGTH = 2048


def _invalid(message: str) -> NoReturn:
    raise IssuerError(400, "invalid_request", message)


def _too_large(limit: int) -> NoReturn:
    raise IssuerError(413, "request_too_large", f"request body exceeds {limit} bytes")


def _reject_constant(name: str) -> NoReturn:
    _invalid(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400, which Python would read as inf
        _invalid(f"number {text[:32]} is out of range")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            _invalid(f"duplicate JSON member {name!r}")
        result[name] = value
    return result


async def read_json_object(request: Request, *, limit: int, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; 413 past `limit` bytes, 415/400 for anything not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            _invalid("malformed Content-Length header")
        if int(declared) > limit:
            _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            _too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if allow_empty:
            return {}
        _invalid("a JSON object body is required")
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise IssuerError(415, "unsupported_media_type", "Content-Type must be application/json")
    try:
        body = json.loads(
            raw, object_pairs_hook=_unique_members, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, over-long integers, deep nesting
        _invalid("body is not valid JSON")
    if not isinstance(body, dict):
        _invalid("body must be a JSON object")
    try:
        # A "\ud800" escape decodes to a lone surrogate, which no UTF-8 consumer (SQLite, HMAC) accepts.
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        _invalid("body contains an unpaired UTF-16 surrogate escape")
    return body


def check_identifier(name: str, value: Any) -> str:
    if not isinstance(value, str):
        _invalid(f"{name} must be a string")
    if not value or len(value) > MAX_IDENTIFIER_LENGTH:
        _invalid(f"{name} must be 1 to {MAX_IDENTIFIER_LENGTH} characters")
    # "/" is refused so that every user can be addressed in an admin URL path.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "/" for ch in value):
        _invalid(f"{name} must not contain '/' or control characters")
    return value


def check_url(name: str, value: Any) -> str:
    """An absolute http(s) URL with a host and no fragment (an RFC 8707 resource indicator)."""
    if not isinstance(value, str):
        _invalid(f"{name} must be a string")
    if not value or len(value) > MAX_URL_LENGTH:
        _invalid(f"{name} must be 1 to {MAX_URL_LENGTH} characters")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in value):
        _invalid(f"{name} must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        _invalid(f"{name} is not a valid URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _invalid(f"{name} must be an absolute http(s) URL")
    if parts.fragment or value.endswith("#"):
        _invalid(f"{name} must not have a fragment")
    return value


class Body:
    """Typed access to a JSON object's members; unknown members are refused up front."""

    def __init__(self, data: dict[str, Any], *, allowed: Iterable[str]) -> None:
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            _invalid(f"unknown field(s): {', '.join(unknown)}")
        self._data = data

    def identifier(self, name: str) -> str:
        if name not in self._data:
            _invalid(f"missing field {name!r}")
        return check_identifier(name, self._data[name])

    def url(self, name: str) -> str:
        if name not in self._data:
            _invalid(f"missing field {name!r}")
        return check_url(name, self._data[name])

    def string(self, name: str, *, default: str | None = None, max_length: int = 1024) -> str | None:
        value = self._data.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            _invalid(f"{name} must be a string")
        if len(value) > max_length:
            _invalid(f"{name} must be at most {max_length} characters")
        return value

    def choice(self, name: str, choices: tuple[str, ...], *, default: str | None = None) -> str | None:
        value = self.string(name, default=default)
        if value is not None and value not in choices:
            _invalid(f"{name} must be one of: {', '.join(choices)}")
        return value

    def integer(self, name: str, *, minimum: int, maximum: int) -> int | None:
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            _invalid(f"{name} must be an integer")
        if not minimum <= value <= maximum:
            _invalid(f"{name} must be between {minimum} and {maximum}")
        return value

    def boolean(self, name: str) -> bool | None:
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            _invalid(f"{name} must be true or false")
        return value

    def url_list(self, name: str, *, max_items: int = 1000) -> tuple[str, ...] | None:
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > max_items:
            _invalid(f"{name} must be a list of at most {max_items} URLs")
        return tuple(check_url(f"{name}[{index}]", item) for index, item in enumerate(value))

    def object(self, name: str, *, required: bool = False) -> dict[str, Any] | None:
        value = self._data.get(name)
        if value is None:
            if required:
                _invalid(f"missing field {name!r}")
            return None
        if not isinstance(value, dict):
            _invalid(f"{name} must be a JSON object")
        return value
