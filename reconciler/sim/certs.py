"""Certificates for the multipassd simulator, laid out as the daemon lays out its own.

multipassd (src/cert/ssl_cert_provider.cpp) keeps a root CA, "Multipass Root CA", in
``multipass_root_cert.pem``, and a leaf for the gRPC server in
``certificates/<server name>.pem`` (key beside it, ``<server name>_key.pem``), signed by
that root and issued (subject CN and DNS SAN) for the host part of the daemon's
``--address`` (daemon_config.cpp: server_name_from; "localhost" for a unix socket). A
client pins the root CA and checks the leaf against that name. The multipass CLI's own
client certificate is self-signed; the simulator issues one alike, in ``client/``.

Trust is the daemon's: any client certificate is accepted at the TLS handshake (see
tls_front.py) and trusted only after `authenticate` with the passphrase.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT_CERT_FILE = "multipass_root_cert.pem"


@dataclass(frozen=True)
class SimCertificates:
    root_cert: Path  # what a client pins: the daemon's root CA
    server_cert: Path  # the daemon's leaf, signed by the root
    server_key: Path
    client_cert: Path  # a self-signed client certificate, as the multipass CLI makes
    client_key: Path
    server_name: str  # what the leaf is issued for


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Canonical"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def generate(
    directory: Path,
    server_name: str = "localhost",
    *,
    client: tuple[Path, Path] | None = None,
) -> SimCertificates:
    """Write a fresh root CA, daemon leaf and client certificate into ``directory``.

    ``client``: the (certificate, key) of a client certificate made already, which the
    result names instead of making one (several simulated daemons, one client).
    """
    directory.mkdir(parents=True, exist_ok=True)
    root_key = _key()
    root = (
        _builder(_name("Multipass Root CA"), _name("Multipass Root CA"), root_key, 3650)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    server_key = _key()
    leaf = (
        _builder(_name(server_name), root.subject, server_key, 825)
        # A DNS name even when the host is an address, as the daemon writes it.
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    certificates = directory / "certificates"
    out = SimCertificates(
        root_cert=directory / ROOT_CERT_FILE,
        server_cert=certificates / f"{server_name}.pem",
        server_key=certificates / f"{server_name}_key.pem",
        client_cert=client[0] if client else directory / "client" / "multipass_cert.pem",
        client_key=client[1] if client else directory / "client" / "multipass_cert_key.pem",
        server_name=server_name,
    )
    _write(out.root_cert, _pem(root))
    _write(certificates / f"{server_name}_root_key.pem", _pem_key(root_key), private=True)
    _write(out.server_cert, _pem(leaf))
    _write(out.server_key, _pem_key(server_key), private=True)
    if client is None:
        generate_client(out.client_cert, out.client_key)
    return out


def generate_client(cert: Path, key: Path) -> None:
    """A self-signed client certificate, as the multipass CLI makes its own."""
    client_key = _key()
    client_name = _name(str(uuid.uuid4()))
    client = (
        _builder(client_name, client_name, client_key, 365)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(client_key, hashes.SHA256())
    )
    _write(cert, _pem(client))
    _write(key, _pem_key(client_key), private=True)


def fingerprint(pem: bytes) -> str:
    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()


def fingerprint_der(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()).hex()
