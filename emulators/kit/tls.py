"""Dev TLS: a local CA and a localhost server certificate, created once, trusted by the emulators.

SignalWire only streams to wss://, and its SDK only speaks https, so users need a CA their own
receivers and the emulators both trust. ``benchtwin certs`` creates it; nothing leaves this machine.

Every start checks that the certificate is still valid; that check reads the expiry from the certificate's DER
itself, so ``cryptography`` is imported only when the files are created (or cannot be read that way).
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

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
    _create(folder, certs)
    return certs


def _create(folder: Path, certs: DevCerts) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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


def _write(path: Path, data: bytes, mode: int) -> None:
    # Write then rename, so parallel test workers never read a half-written file.
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def _valid_for_a_day(path: Path) -> bool:
    try:
        pem = path.read_bytes()
    except OSError:
        return False
    try:
        not_after = _der_not_after(ssl.PEM_cert_to_DER_cert(pem.decode("ascii")))
    except (ValueError, IndexError):  # not one plain PEM certificate: let cryptography judge it
        from cryptography import x509

        try:
            not_after = x509.load_pem_x509_certificate(pem).not_valid_after_utc
        except ValueError:
            return False
    return not_after > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


def _der_element(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of the content, end of the content) of the DER element at ``pos``."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(der[pos : pos + size], "big")
        pos += size
    if pos + length > len(der):
        raise ValueError("truncated DER element")
    return tag, pos, pos + length


def _der_not_after(der: bytes) -> dt.datetime:
    """The notAfter of an X.509 certificate (RFC 5280 §4.1: the fifth element of the TBSCertificate, after an
    optional version), in UTC."""
    tag, start, end = _der_element(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not one DER certificate")
    tag, pos, _ = _der_element(der, start)  # tbsCertificate
    if tag != 0x30:
        raise ValueError("no TBSCertificate")
    if der[pos] == 0xA0:  # [0] version
        pos = _der_element(der, pos)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        pos = _der_element(der, pos)[2]
    tag, pos, _ = _der_element(der, pos)  # validity
    if tag != 0x30:
        raise ValueError("no validity")
    pos = _der_element(der, pos)[2]  # notBefore
    tag, start, end = _der_element(der, pos)
    text = der[start:end].decode("ascii")
    if tag == 0x17:  # UTCTime, YYMMDDHHMMSSZ: years 50-99 are 19xx (RFC 5280 §4.1.2.5.1)
        when = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
        if when.year >= 2050:
            when = when.replace(year=when.year - 100)
    elif tag == 0x18:  # GeneralizedTime, YYYYMMDDHHMMSSZ
        when = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("notAfter is not a time")
    return when.replace(tzinfo=dt.UTC)


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
