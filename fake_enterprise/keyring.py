"""The key ring: the current signing key plus retired keys still needed by live tokens.

A key signs only while it is current. When it is retired it stays in the JWKS until every
token it signed has expired (plus a grace period for verifier leeway), so rotation never
leaves a window in which a valid token cannot be verified. The ring tracks, per key, the
latest `exp` it has been asked to sign (its high-water mark); the database copy is written
ahead of use in steps, so a restart can only keep a key longer, never drop it too early.

Several worker processes may share one ring (one database). Each writes its own marks (a row
per key and process in `key_reservations`) and knows its own exact mark in memory; a retired
key is dropped only when its own exact mark and every other process's stored mark have passed.
Every change to which keys exist or which one is current bumps a counter that each process
checks (cheaply, see `_refresh`) before it signs or publishes, so a rotation made by one
worker is seen by all from their next request on.

A stored key is authenticated twice when it is loaded: its `kid`, `alg`, `public_jwk` and
`created_at` are the associated data of its sealed private key, and the public JWK (and so
the `kid`, its RFC 7638 thumbprint) is derived again from the private key and compared. Someone
who can write the database but not read the data key cannot publish a key of their own.
`retired_at` and `max_exp` are not bound: they change as the ring runs, and they only choose
among keys that are already authentic (which one signs, how long one stays published).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from fake_enterprise.crypto import DataCipher, SealedDataError, StorageTamperedError
from fake_enterprise.settings import SIGNING_ALGORITHMS
from fake_enterprise.storage import Database, bump_counter, read_counter

__all__ = ["KeyRing", "SigningKey"]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# RFC 7638: the members that define a key's thumbprint, per key type.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
# The `counters` row bumped by every change to which keys exist or which one is current.
_GENERATION = "signing_keys"
_KEY_TYPES: dict[str, type] = {
    "RS256": rsa.RSAPrivateKey,
    "ES256": ec.EllipticCurvePrivateKey,
    "EdDSA": ed25519.Ed25519PrivateKey,
    "Ed25519": ed25519.Ed25519PrivateKey,
}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private_key: PrivateKey = field(repr=False)
    public_jwk: dict[str, Any] = field(repr=False)
    created_at: int
    retired_at: int | None = None


def _generate(alg: str) -> PrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in ("EdDSA", "Ed25519"):
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {', '.join(SIGNING_ALGORITHMS)}")


def _public_jwk(private_key: PrivateKey, alg: str) -> dict[str, Any]:
    public_key = private_key.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    kid = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return {**members, "kid": kid, "alg": alg, "use": "sig"}


def _sealing_context(kid: str, alg: str, public_jwk: str, created_at: int) -> str:
    """The associated data of a key row: every field that never changes, JSON-encoded (unambiguous)."""
    return "signing-key:v2:" + json.dumps([kid, alg, public_jwk, created_at], separators=(",", ":"))


def _legacy_sealing_context(kid: str) -> str:
    # Rows written before the v2 context bound only the kid; they are resealed on load.
    return f"signing-key:{kid}"


def _tampered(kid: str, what: str) -> StorageTamperedError:
    return StorageTamperedError(
        f"signing key {kid!r} in the database was altered outside the issuer ({what}); refusing to start"
    )


def _authentic_key(row: Any, pem: bytes) -> SigningKey:
    """The key a row describes, once its public half is shown to come from its private half."""
    kid, alg = row["kid"], row["alg"]
    private_key = serialization.load_pem_private_key(pem, password=None)
    expected_type = _KEY_TYPES.get(alg)
    if expected_type is None or not isinstance(private_key, expected_type):
        raise _tampered(kid, f"alg {alg!r} does not match the private key")
    derived = _public_jwk(private_key, alg)  # type: ignore[arg-type]
    if derived["kid"] != kid:
        raise _tampered(kid, "the kid is not the thumbprint of the private key")
    try:
        stored_jwk = json.loads(row["public_jwk"])
    except ValueError:
        stored_jwk = None
    if stored_jwk != derived:
        raise _tampered(kid, "the public JWK is not the private key's")
    return SigningKey(
        kid=kid,
        alg=alg,
        private_key=private_key,  # type: ignore[arg-type]
        public_jwk=derived,
        created_at=row["created_at"],
        retired_at=row["retired_at"],
    )


class KeyRing:
    """Signing keys of one issuer, persisted (private halves sealed) in the database."""

    def __init__(
        self,
        db: Database,
        cipher: DataCipher,
        *,
        clock: Callable[[], float],
        grace: int,
        max_retention: int,
        write_ahead: int,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = clock
        self._grace = grace
        self._max_retention = max_retention
        self._write_ahead = write_ahead
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        # This process's marks: exact in memory, and as written ahead to `key_reservations`.
        self._holder = secrets.token_hex(8)
        self._max_exp: dict[str, int] = {}
        self._stored_max_exp: dict[str, int] = {}
        # The stored marks of everyone else (other workers, earlier runs), as of the last sync.
        self._others_max_exp: dict[str, int] = {}
        self._current: SigningKey | None = None
        # What this process last saw of the database: `PRAGMA data_version` and the ring's counter.
        self._seen_version: int | None = None
        self._generation = -1

    def load(self, alg: str) -> None:
        """Load stored keys; make an `alg` key current (rotating to it if the stored one differs)."""
        with self._lock:
            legacy = self._sync()
        if legacy:
            with self._db.transaction() as conn:
                conn.executemany(
                    "UPDATE signing_keys SET sealed_private_key = ?, public_jwk = ? WHERE kid = ?",
                    [(self._seal(key), json.dumps(key.public_jwk), key.kid) for key in legacy],
                )
        if self._current is None or self._current.alg != alg:
            self.rotate(alg)

    def _sync(self) -> list[SigningKey]:
        """Make the ring the database's (caller holds `_lock`); the keys found sealed the legacy way.

        Rows new to this process are opened and authenticated; known keys are not opened again,
        only their `retired_at` and `max_exp` are taken over. Keys whose rows are gone are dropped.
        """
        with self._db.reading() as conn:
            # The counter first: a commit landing between the two reads only causes one more sync.
            self._generation = read_counter(conn, _GENERATION)
            rows = conn.execute("SELECT * FROM signing_keys ORDER BY rowid").fetchall()
            others = dict(
                conn.execute(
                    "SELECT kid, MAX(max_exp) FROM key_reservations WHERE holder != ? GROUP BY kid",
                    (self._holder,),
                ).fetchall()
            )
        keys: dict[str, SigningKey] = {}
        legacy: list[SigningKey] = []
        current = None
        for row in rows:
            kid = row["kid"]
            key = self._keys.get(kid)
            if key is None:
                pem, is_legacy = self._open_row(row)
                key = _authentic_key(row, pem)
                if is_legacy:
                    legacy.append(key)
            elif key.retired_at != row["retired_at"]:
                key = replace(key, retired_at=row["retired_at"])
            keys[kid] = key
            self._max_exp.setdefault(kid, 0)
            self._stored_max_exp.setdefault(kid, 0)
            # signing_keys.max_exp holds the marks of runs before key_reservations existed.
            self._others_max_exp[kid] = max(row["max_exp"], others.get(kid) or 0)
            if key.retired_at is None:
                current = key
        for kid in self._keys.keys() - keys.keys():
            del self._max_exp[kid], self._stored_max_exp[kid], self._others_max_exp[kid]
        self._keys = keys
        self._current = current
        return legacy

    def _refresh(self) -> None:
        """Take over what another process changed in the ring (caller holds `_lock`).

        Called before every signature and JWKS answer, so a rotation made by one worker is used by
        every worker from its next request on. The common case costs one `PRAGMA data_version`
        (about 1-2 us; see docs/issuer-performance.md); the counter is read only after some commit
        by another process, and the rows only when that commit changed the keys.
        """
        version = self._db.data_version()
        if version == self._seen_version:
            return
        self._seen_version = version
        with self._db.reading() as conn:
            generation = read_counter(conn, _GENERATION)
        if generation != self._generation:
            self._sync()

    def _open_row(self, row: Any) -> tuple[bytes, bool]:
        """The private key PEM of a row, and whether it was sealed the legacy way.

        The caller has already checked that the data key opens this database, so a row that
        does not open was changed (its bound fields or its ciphertext).
        """
        sealed, kid = row["sealed_private_key"], row["kid"]
        context = _sealing_context(kid, row["alg"], row["public_jwk"], row["created_at"])
        try:
            return self._cipher.open(sealed, context), False
        except SealedDataError:
            pass
        try:
            return self._cipher.open(sealed, _legacy_sealing_context(kid)), True
        except SealedDataError:
            raise _tampered(kid, "its fields do not match their seal") from None

    def _seal(self, key: SigningKey) -> bytes:
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        context = _sealing_context(key.kid, key.alg, json.dumps(key.public_jwk), key.created_at)
        return self._cipher.seal(pem, context)

    @property
    def current(self) -> SigningKey:
        if self._current is None:
            raise RuntimeError("the key ring has not been loaded")
        return self._current

    def rotate(self, alg: str | None = None) -> SigningKey:
        """Make a fresh key current; the previous one is retired but stays published while needed."""
        alg = alg or self.current.alg
        private_key = _generate(alg)
        jwk = _public_jwk(private_key, alg)
        now = int(self._clock())
        key = SigningKey(kid=jwk["kid"], alg=alg, private_key=private_key, public_jwk=jwk, created_at=now)
        with self._lock:
            with self._db.transaction() as conn:
                # Every key still current is retired, also one another worker made current since
                # this process last looked.
                conn.execute("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL", (now,))
                conn.execute(
                    "INSERT INTO signing_keys (kid, alg, sealed_private_key, public_jwk, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (key.kid, alg, self._seal(key), json.dumps(jwk), now),
                )
                bump_counter(conn, _GENERATION)
            self._keys[key.kid] = key  # known, so the sync does not open it again
            self._sync()
        return key

    def reserve(self, exp: float | None) -> SigningKey:
        """The current key, on the promise to keep it published until `exp` (+ grace).

        Reserving before signing closes the race with a concurrent rotation: the key a
        token is signed with is already committed to stay published for it.
        """
        now = int(self._clock())
        horizon = now + self._max_retention
        until = horizon if exp is None else min(int(exp) + 1, horizon)
        with self._lock:
            self._refresh()
            key = self.current
            if until > self._max_exp[key.kid]:
                self._max_exp[key.kid] = until
                if until > self._stored_max_exp[key.kid]:
                    stored = min(until + self._write_ahead, horizon)
                    with self._db.transaction() as conn:
                        conn.execute(
                            "INSERT INTO key_reservations (kid, holder, max_exp) VALUES (?, ?, ?)"
                            " ON CONFLICT (kid, holder) DO UPDATE SET max_exp = excluded.max_exp",
                            (key.kid, self._holder, stored),
                        )
                    self._stored_max_exp[key.kid] = stored
            return key

    def published(self) -> list[SigningKey]:
        """The current key first, then retired keys some unexpired token may still need."""
        now = int(self._clock())
        with self._lock:
            self._refresh()
            expired = [
                kid
                for kid, key in self._keys.items()
                if key.retired_at is not None
                and max(self._max_exp[kid], self._others_max_exp[kid], key.retired_at) + self._grace <= now
            ]
            if expired:
                # Decided again on the stored marks: another worker may have signed later tokens.
                with self._db.transaction() as conn:
                    deleted = sum(
                        conn.execute(
                            "DELETE FROM signing_keys WHERE kid = ? AND retired_at IS NOT NULL"
                            " AND MAX(max_exp, retired_at, ?, (SELECT IFNULL(MAX(max_exp), 0)"
                            " FROM key_reservations WHERE kid = ? AND holder != ?)) + ? <= ?",
                            (kid, self._max_exp[kid], kid, self._holder, self._grace, now),
                        ).rowcount
                        for kid in expired
                    )
                    if deleted:
                        bump_counter(conn, _GENERATION)
                self._sync()
            current = self.current
            # Newest first: `_keys` keeps creation order.
            retired = [key for key in reversed(self._keys.values()) if key.kid != current.kid]
            return [current, *retired]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(key.public_jwk) for key in self.published()]}
