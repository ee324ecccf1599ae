"""Reading a `WWW-Authenticate` challenge (RFC 9110 §11.6.1, RFC 6750 §3).

Peers get the syntax wrong (an unescaped `"` inside `error_description` is common), and the
battery must then say "malformed challenge", not "no resource_metadata": so a value that breaks
the grammar is read once more, leniently, to find the parameters it does carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Challenge", "parse_challenge"]

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
# token68 (RFC 9110 §11.2), standing alone up to the end of the challenge or the next one.
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))")
_WHITESPACE = " \t"
# Where a parameter starts in a value that broke the grammar: after the scheme or a comma.
_LENIENT_PARAM_RE = re.compile(rf"(?:^|,)[ \t]*({_TOKEN})[ \t]*=")


@dataclass(frozen=True)
class Challenge:
    """A parsed `WWW-Authenticate` challenge: its scheme, auth-params or token68, and, when the
    value breaks the grammar, why (`malformed`; `params` then holds what a lenient read found)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None
    malformed: str | None = None

    def __str__(self) -> str:
        error = self.params.get("error")
        return f"{self.scheme} error={error}" if error else self.scheme


class _Malformed(ValueError):
    pass


def parse_challenge(value: str | None) -> Challenge | None:
    """Parse the first challenge of a `WWW-Authenticate` value (RFC 9110 §11.6.1)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    scheme_match = _TOKEN_RE.match(text)
    if scheme_match is None:
        return Challenge(scheme="", malformed="the value does not start with an auth-scheme")
    scheme = scheme_match.group()
    rest = text[scheme_match.end() :]
    if rest and rest[0] not in _WHITESPACE:
        return Challenge(scheme=scheme, malformed=f"no space after the scheme {scheme!r}")
    rest = rest.lstrip(_WHITESPACE)
    token68 = _TOKEN68_RE.match(rest)
    if token68 is not None and not _is_auth_param(rest):
        return Challenge(scheme=scheme, token68=token68.group())
    try:
        return Challenge(scheme=scheme, params=_auth_params(rest))
    except _Malformed as exc:
        return Challenge(scheme=scheme, params=_lenient_params(rest), malformed=str(exc))


def _is_auth_param(rest: str) -> bool:
    """`realm=x` also matches token68's alphabet up to its `=`; a value after the `=` decides."""
    match = re.match(rf"{_TOKEN}[ \t]*=[ \t]*(?:\"|{_TOKEN})", rest)
    return match is not None


def _auth_params(rest: str) -> dict[str, str]:
    """`#auth-param` by the grammar; stops where the next challenge begins."""
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in _WHITESPACE + ",":
            i += 1
        if i >= n:
            break
        key_match = _TOKEN_RE.match(rest, i)
        if key_match is None:
            raise _Malformed(f"expected a parameter name at {rest[i : i + 12]!r}")
        key = key_match.group().lower()
        i = key_match.end()
        while i < n and rest[i] in _WHITESPACE:
            i += 1
        if i >= n or rest[i] != "=":
            break  # the scheme of the next challenge: not ours to read
        i += 1
        while i < n and rest[i] in _WHITESPACE:
            i += 1
        if i < n and rest[i] == '"':
            value, i = _quoted_string(rest, i, key)
        else:
            value_match = _TOKEN_RE.match(rest, i)
            if value_match is None:
                raise _Malformed(f"parameter {key} has no value")
            value, i = value_match.group(), value_match.end()
        if key in params:
            raise _Malformed(f"parameter {key} appears twice")
        params[key] = value
        while i < n and rest[i] in _WHITESPACE:
            i += 1
        if i < n and rest[i] != ",":
            raise _Malformed(f"unexpected {rest[i]!r} after the value of {key} (an unescaped '\"'?)")
    return params


def _quoted_string(rest: str, start: int, key: str) -> tuple[str, int]:
    """The quoted-string at `rest[start]` (a `"`), unescaped, and the index after it."""
    chars: list[str] = []
    i = start + 1
    while i < len(rest):
        char = rest[i]
        if char == '"':
            return "".join(chars), i + 1
        if char == "\\" and i + 1 < len(rest):
            i += 1
            char = rest[i]
        chars.append(char)
        i += 1
    raise _Malformed(f"the quoted value of {key} is not closed")


def _lenient_params(rest: str) -> dict[str, str]:
    """Each `name=` after a comma starts a parameter whose value runs to the next one; outer
    quotes are dropped. Good enough to see which parameters a broken challenge carries."""
    starts = list(_LENIENT_PARAM_RE.finditer(rest))
    params: dict[str, str] = {}
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        end = following.start() if following else len(rest)
        raw = rest[match.end() : end].strip(_WHITESPACE)
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(match.group(1).lower(), raw)
    return params
