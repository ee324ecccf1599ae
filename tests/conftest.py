import datetime
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _throwaway_certificate() -> bytes:
    """A self-signed CA certificate whose private key is thrown away: nothing can chain to it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-idfwd tests: no TLS here")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="session", autouse=True)
def _trust_store_of_one_certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test server is plain HTTP on loopback, yet each httpx/httpx2 client parses the whole
    CA bundle when it is created (about 25 ms of CPU; the suite creates some 1,500 clients, and the
    CLI and snippet subprocesses more). `SSL_CERT_FILE`, which both read, points them at one
    throwaway certificate instead; subprocesses inherit it. A test that did reach a TLS server
    would fail certificate verification, never skip it."""
    bundle = tmp_path_factory.mktemp("trust") / "ca.pem"
    bundle.write_bytes(_throwaway_certificate())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(bundle))
        patch.delenv("SSL_CERT_DIR", raising=False)
        yield
