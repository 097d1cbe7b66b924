"""Dev TLS: a local CA and a localhost server certificate, created once, trusted by the emulators.

SignalWire only streams to wss://, and its SDK only speaks https, so users need a CA their own
receivers and the emulators both trust. ``benchtwin certs`` creates it; nothing leaves this machine.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "benchtwin local dev CA"


@dataclass(frozen=True)
class DevCerts:
    ca: Path
    cert: Path
    key: Path

    def as_dict(self) -> dict[str, str]:
        return {"ca": str(self.ca), "cert": str(self.cert), "key": str(self.key)}


def default_certs_dir() -> Path:
    """``$BENCHTWIN_CERTS_DIR``, else ``$XDG_DATA_HOME/benchtwin/certs``, else ``~/.local/share/benchtwin/certs``."""
    env = os.environ.get("BENCHTWIN_CERTS_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "benchtwin" / "certs"


def ensure_dev_certs(directory: Path | str | None = None) -> DevCerts:
    """Create the CA and the localhost certificate if they are missing (or expire within a day)."""
    folder = Path(directory) if directory is not None else default_certs_dir()
    certs = DevCerts(ca=folder / "ca.pem", cert=folder / "server.pem", key=folder / "server-key.pem")
    if all(p.exists() for p in (certs.ca, certs.cert, certs.key)) and _valid_for_a_day(certs.cert):
        return certs
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(certs.ca, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(certs.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(
        certs.key,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        0o600,
    )
    return certs


def _write(path: Path, data: bytes, mode: int) -> None:
    # Write then rename, so parallel test workers never read a half-written file.
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def _valid_for_a_day(path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (ValueError, OSError):
        return False
    return cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


def server_ssl_context(certs: DevCerts) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certs.cert), str(certs.key))
    return ctx


def client_ssl_context(ca_bundle: Path | str | None = None, *, trust_dev_ca: bool = True) -> ssl.SSLContext:
    """Verifies peers against the system store, the dev CA and an optional extra bundle.

    One context per combination is shared: loading the system store costs tens of milliseconds, and
    every emulator asks for one at start-up. Callers must not modify it.
    """
    ca = default_certs_dir() / "ca.pem" if trust_dev_ca else None
    return _client_context(None if ca_bundle is None else str(ca_bundle), str(ca) if ca and ca.exists() else None)


@functools.lru_cache(maxsize=32)
def _client_context(ca_bundle: str | None, dev_ca: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if dev_ca is not None:
        ctx.load_verify_locations(cafile=dev_ca)
    if ca_bundle is not None:
        ctx.load_verify_locations(cafile=ca_bundle)
    return ctx
