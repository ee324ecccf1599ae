"""Reading the RFC 6750 Bearer challenge of a refusal: the `error` and `error_description` a server sent.

`WWW-Authenticate` is parsed by the RFC 9110 §11.6.1 grammar: a comma-separated list of
challenges, each an auth-scheme followed by a token68 or by auth-params whose values are
tokens or quoted-strings (with backslash escapes). A malformed remainder ends the parse but
keeps what was read before it, so one peer's stray quote does not hide the reason it gave.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["BearerChallenge", "parse_bearer_challenge"]

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(rf"[ \t,]*({_TOKEN})")
_PARAM = re.compile(rf'[ \t]*({_TOKEN})[ \t]*=[ \t]*(?:({_TOKEN})|"((?:[^"\\]|\\.)*)")[ \t]*(?=,|$)')
_TOKEN68 = re.compile(r"[ \t]+([A-Za-z0-9._~+/-]+=*)[ \t]*(?=,|$)")
_SEPARATOR = re.compile(r"[ \t]*(?:,[ \t]*)+")
_ESCAPE = re.compile(r"\\(.)")
# RFC 6750 §3: error and error_description are limited to these characters; a server's text is
# shown to people, so anything else (control characters, say) is dropped rather than echoed.
_UNSAFE = re.compile(r"[^\x20-\x7e]")
_MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class BearerChallenge:
    """The auth-params of a `Bearer` challenge, names lowercased; the first of a repeated name wins."""

    params: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def error(self) -> str | None:
        return _clean(self.params.get("error"))

    @property
    def error_description(self) -> str | None:
        return _clean(self.params.get("error_description"))


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = _UNSAFE.sub("", value).strip()[:_MAX_DESCRIPTION]
    return text or None


def _challenges(value: str) -> Iterator[tuple[str, dict[str, str]]]:
    pos = 0
    while (scheme := _SCHEME.match(value, pos)) is not None:
        pos = scheme.end()
        params: dict[str, str] = {}
        token68 = _TOKEN68.match(value, pos)
        if token68 is not None and _PARAM.match(value, pos) is None:
            pos = token68.end()
        else:
            while (param := _PARAM.match(value, pos)) is not None:
                name, token, quoted = param.groups()
                params.setdefault(name.lower(), token if token is not None else _ESCAPE.sub(r"\1", quoted))
                pos = param.end()
                separator = _SEPARATOR.match(value, pos)
                if separator is None or _PARAM.match(value, separator.end()) is None:
                    break  # the end, a malformed remainder, or the start of another challenge
                pos = separator.end()
        yield scheme.group(1), params
        separator = _SEPARATOR.match(value, pos)
        if separator is None:
            return  # the end, or a remainder that is not a challenge
        pos = separator.end()


def parse_bearer_challenge(values: Iterable[str]) -> BearerChallenge | None:
    """The first `Bearer` challenge among the `WWW-Authenticate` field values, or None if there is none."""
    for value in values:
        for scheme, params in _challenges(value):
            if scheme.lower() == "bearer":
                return BearerChallenge(params)
    return None
