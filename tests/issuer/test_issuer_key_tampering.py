"""Published keys are authenticated at rest (issue 9.3): a key row changed in the file stops the start."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from issuer_support import ADMIN_SECRET, AUDIENCE, SECRET

from fake_enterprise import DATA_KEY_ENV, IssuerSettings, StorageTamperedError, create_app
from fake_enterprise.crypto import DataCipher

DATA_KEY = b"D" * 32
SELECT_SEALED = "SELECT sealed_private_key FROM signing_keys WHERE kid = ?"


@pytest.fixture(autouse=True)
def _no_data_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_KEY_ENV, raising=False)


def _settings(db: Path, alg: str = "ES256") -> IssuerSettings:
    return IssuerSettings(
        issuer_url="http://127.0.0.1:1",
        secret=SECRET,
        admin_secret=ADMIN_SECRET,
        db_path=str(db),
        data_key=DATA_KEY,
        alg=alg,
    )


def _jwks_of(db: Path) -> dict[str, Any]:
    app = create_app(_settings(db))
    try:
        return app.state.issuer.jwks()
    finally:
        app.state.issuer.close()


def _issuer_with_two_keys(db: Path) -> list[str]:
    """A database holding a retired RS256 key and a current ES256 key; their kids, current first."""
    app = create_app(_settings(db, alg="RS256"))
    try:
        app.state.issuer.rotate_keys("ES256")
        return [key["kid"] for key in app.state.issuer.jwks()["keys"]]
    finally:
        app.state.issuer.close()


def _attacker() -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)


def _tamper(db: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute(statement, params).rowcount == 1
    conn.close()


def _swap_public_jwk(db: Path, kid: str, jwk: dict[str, Any] | None = None) -> dict[str, Any]:
    """Put an attacker's RSA public key under our `kid`; returns the row's new JWK."""
    jwk = jwk or _attacker()[1]
    published = {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}
    _tamper(db, "UPDATE signing_keys SET public_jwk = ? WHERE kid = ?", json.dumps(published), kid)
    return published


def _sealed(db: Path, kid: str) -> bytes:
    with sqlite3.connect(db) as conn:
        (sealed,) = conn.execute(SELECT_SEALED, (kid,)).fetchone()
    conn.close()
    return bytes(sealed)


Tamper = Callable[[Path, list[str]], object]

TAMPERINGS: dict[str, Tamper] = {
    "attacker-public-key-under-our-kid": lambda db, kids: _swap_public_jwk(db, kids[1]),
    "alg-changed": lambda db, kids: _tamper(
        db, "UPDATE signing_keys SET alg = 'ES256' WHERE kid = ?", kids[1]
    ),
    "kid-changed": lambda db, kids: _tamper(
        db, "UPDATE signing_keys SET kid = 'chosen' WHERE kid = ?", kids[0]
    ),
    "created-at-changed": lambda db, kids: _tamper(
        db, "UPDATE signing_keys SET created_at = created_at - 1 WHERE kid = ?", kids[0]
    ),
    "sealed-key-moved-to-another-row": lambda db, kids: _tamper(
        db,
        f"UPDATE signing_keys SET sealed_private_key = ({SELECT_SEALED}) WHERE kid = ?",
        kids[0],
        kids[1],
    ),
    "public-jwk-not-json": lambda db, kids: _tamper(
        db, "UPDATE signing_keys SET public_jwk = '{' WHERE kid = ?", kids[0]
    ),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_key_row_stops_the_start(tmp_path: Path, tamper: Tamper) -> None:
    db = tmp_path / "issuer.db"
    kids = _issuer_with_two_keys(db)
    tamper(db, kids)
    with pytest.raises(StorageTamperedError, match="altered outside the issuer") as refused:
        create_app(_settings(db))
    assert "\n" not in str(refused.value)


def test_a_token_signed_by_an_attacker_under_our_kid_never_verifies(tmp_path: Path) -> None:
    db = tmp_path / "issuer.db"
    kids = _issuer_with_two_keys(db)
    honest = _jwks_of(db)
    attacker_key, attacker_jwk = _attacker()
    forged = jwt.encode(
        {"sub": "x", "aud": AUDIENCE}, attacker_key, algorithm="RS256", headers={"kid": kids[1]}
    )
    published = _swap_public_jwk(db, kids[1], attacker_jwk)
    # The audit's attack: with the attacker's key published under our kid, the forgery would verify...
    assert jwt.decode(forged, jwt.PyJWK(published).key, algorithms=["RS256"], audience=AUDIENCE)
    # ...but the issuer refuses to start on that file, so it never publishes it,
    with pytest.raises(StorageTamperedError):
        create_app(_settings(db))
    # and against the key it does publish, the forgery fails.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            forged, jwt.PyJWKSet.from_dict(honest)[kids[1]].key, algorithms=["RS256"], audience=AUDIENCE
        )


def _v2_context(db: Path, kid: str) -> str:
    with sqlite3.connect(db) as conn:
        jwk_text, alg, created = conn.execute(
            "SELECT public_jwk, alg, created_at FROM signing_keys WHERE kid = ?", (kid,)
        ).fetchone()
    conn.close()
    return "signing-key:v2:" + json.dumps([kid, alg, jwk_text, created], separators=(",", ":"))


def _reseal_the_old_way(db: Path, kid: str) -> None:
    """Seal the row's private key with the kid-only associated data the issuer used before."""
    cipher = DataCipher(DATA_KEY)
    resealed = cipher.seal(cipher.open(_sealed(db, kid), _v2_context(db, kid)), f"signing-key:{kid}")
    _tamper(db, "UPDATE signing_keys SET sealed_private_key = ? WHERE kid = ?", resealed, kid)


def test_rows_sealed_the_old_way_are_checked_and_resealed(tmp_path: Path) -> None:
    db = tmp_path / "issuer.db"
    kids = _issuer_with_two_keys(db)
    jwks_before = _jwks_of(db)
    for kid in kids:
        _reseal_the_old_way(db, kid)
    assert _jwks_of(db) == jwks_before  # checked and resealed
    for kid in kids:
        DataCipher(DATA_KEY).open(_sealed(db, kid), _v2_context(db, kid))
    assert _jwks_of(db) == jwks_before

    # An old-style row with a swapped public key is refused like any other tampering.
    _reseal_the_old_way(db, kids[1])
    _swap_public_jwk(db, kids[1])
    with pytest.raises(StorageTamperedError, match="public JWK"):
        create_app(_settings(db))


def test_the_cli_refuses_a_tampered_database_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "issuer.db"
    app = create_app(
        IssuerSettings(
            issuer_url="http://127.0.0.1:1", secret=SECRET, admin_secret=ADMIN_SECRET, db_path=str(db)
        )
    )
    try:
        (kid,) = [key["kid"] for key in app.state.issuer.jwks()["keys"]]
    finally:
        app.state.issuer.close()
    _swap_public_jwk(db, kid)
    completed = subprocess.run(
        [sys.executable, "-m", "harness", "issuer", "--port", "0", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    (line,) = completed.stderr.splitlines()
    assert line.startswith("mcp-idfwd issuer: signing key") and "altered outside the issuer" in line
