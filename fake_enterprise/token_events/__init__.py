"""Token events: every token the issuer hands out, and every refusal, kept for the console.

`TokenEventObserver` is an ASGI middleware on the two paths that hand out tokens to users (the
inner issue-token API and the OAuth token endpoint). It sees each request and its answer, so one
place records both what was issued and what was refused, with the reason the caller was given,
whichever handler (ours or the `mcp` SDK's) produced it.

`TokenEvents` keeps the most recent events in a bounded SQLite table, in a file beside the
issuer's database (`<db>-events`; in memory, in the issuer's database), written behind the answers
by a thread: several worker processes on one database share them and they survive a restart.

What is stored: who asked (tenant, user, subject, client), the audience, the answer's status and
reason, and a token's decoded header and claims. Never a token, a signature, a secret or a grant:
request fields are copied from an allow-list, and a token is split and its signature dropped before
anything is kept.
"""

from fake_enterprise.token_events.decoding import decode_unverified
from fake_enterprise.token_events.observer import TokenEventObserver
from fake_enterprise.token_events.store import EVENTS_SUFFIX, TokenEvent, TokenEvents

__all__ = ["EVENTS_SUFFIX", "TokenEvent", "TokenEventObserver", "TokenEvents", "decode_unverified"]
