"""Which URLs a secret may be sent to in clear text: loopback only, unless the host opts in."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["ALLOW_INSECURE_HTTP", "is_loopback_host", "needs_insecure_http"]

# The name of the opt-in, as every refusal spells it (contract C4).
ALLOW_INSECURE_HTTP = "allow_insecure_http"


def is_loopback_host(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1: traffic that never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def needs_insecure_http(url: str) -> bool:
    """Whether `url` is plain http to a host off loopback (so secrets would cross a network in clear)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback_host(parts.hostname or "")
