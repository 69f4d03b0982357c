"""Certificates for the multipassd simulator: a CA, the daemon's certificate, a client's.

Trust model, and why it differs from the real daemon's in one respect: multipassd
accepts any client certificate at the TLS handshake and decides trust afterwards
(a certificate becomes trusted through `authenticate`). grpcio's Python server
cannot accept an arbitrary certificate: it asks for none, or verifies it against
given roots. So the simulator issues the client certificate itself, verifies
client certificates against its CA at the handshake, and still trusts one only
after `authenticate` succeeded with the passphrase, answering UNAUTHENTICATED
with the daemon's message until then. The passphrase flow is therefore exercised
for real; what is not simulated is a foreign, self-signed client certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class SimCertificates:
    ca_cert: Path  # signs client certificates only
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate(directory: Path, server_name: str = "localhost") -> SimCertificates:
    """Write a fresh CA, daemon and client certificate into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    valid = (now - dt.timedelta(days=1), now + dt.timedelta(days=365))

    ca_key = _key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("multipassd simulator CA"))
        .issuer_name(_name("multipassd simulator CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )

    server_key, client_key = _key(), _key()
    # Like multipassd's own, the daemon certificate is self-signed: clients pin it.
    daemon = (
        x509.CertificateBuilder()
        .subject_name(_name(server_name))
        .issuer_name(_name(server_name))
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(server_name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(server_key, hashes.SHA256())
    )
    out = SimCertificates(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "multipassd_cert.pem",
        server_key=directory / "multipassd_key.pem",
        client_cert=directory / "multipass_cert.pem",
        client_key=directory / "multipass_cert_key.pem",
    )
    _write(out.ca_cert, ca.public_bytes(serialization.Encoding.PEM))
    _write(out.server_cert, daemon.public_bytes(serialization.Encoding.PEM))
    _write(out.server_key, _pem_key(server_key), private=True)
    _write(
        out.client_cert,
        leaf("multipass client", client_key).public_bytes(serialization.Encoding.PEM),
    )
    _write(out.client_key, _pem_key(client_key), private=True)
    return out


def fingerprint(pem: bytes) -> str:
    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()
