"""Reading a `WWW-Authenticate` challenge (RFC 9110 §11.6.1, RFC 6750 §3)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Challenge", "parse_challenge"]


@dataclass(frozen=True)
class Challenge:
    """A parsed `WWW-Authenticate` challenge: its scheme and auth-params."""

    scheme: str
    params: dict[str, str]

    def __str__(self) -> str:
        error = self.params.get("error")
        return f"{self.scheme} error={error}" if error else self.scheme


def parse_challenge(value: str | None) -> Challenge | None:
    """Parse the first challenge of a `WWW-Authenticate` value (RFC 9110 §11.6.1)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        start = i
        while i < n and rest[i] not in "=, ":
            i += 1
        key = rest[start:i].lower()
        while i < n and rest[i] == " ":
            i += 1
        if i >= n or rest[i] != "=":
            break  # a token68 or the start of the next challenge: not ours to read
        i += 1
        while i < n and rest[i] == " ":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1
            params[key] = "".join(chars)
        else:
            start = i
            while i < n and rest[i] not in ", ":
                i += 1
            params[key] = rest[start:i]
    return Challenge(scheme=scheme, params=params)
