"""`reconciler secrets import` through the CLI: what reaches stdout, what reaches stderr.

tests/integration/test_secrets_import.py covers finding, pairing and the round
trip through Settings. These cover the promises people pipe into `nomad var put`
rely on: on any error stdout stays empty (so nothing half-made is stored) and
the message names the file; the passphrase and the key never leave through
stderr, on success or failure.
"""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.cli import main

PASSPHRASE = "correct horse battery staple"


def write_pair(directory: Path, name: str = "multipass_cert") -> tuple[Path, Path]:
    """A self-signed client certificate and its key, as the multipass CLI makes them."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "multipass-client")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}_key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["secrets", "import", *args])
    out, err = capsys.readouterr()
    return code, out, err


def key_lines(key_path: Path) -> list[str]:
    return [line for line in key_path.read_text().splitlines() if "-----" not in line]


def test_success_puts_secrets_only_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = write_pair(tmp_path)
    server_cert, _ = write_pair(tmp_path / "daemon", "multipassd_cert")
    code, out, err = run(
        monkeypatch,
        capsys,
        *("--cert", str(cert), "--key", str(key), "--server-cert", str(server_cert)),
        *("--multipass-address", "unix:/var/snap/multipass/common/multipass_socket"),
        "--passphrase-stdin",
        stdin=PASSPHRASE + "\n",
    )
    assert code == 0, err
    items = json.loads(out)["Items"]
    # Exactly the item names reconciler.settings reads from the <prefix> variable.
    assert set(items) == {
        "client_cert",
        "client_key",
        "passphrase",
        "server_cert",
        "multipass_address",
    }
    assert items["passphrase"] == PASSPHRASE and items["client_key"] == key.read_text()
    assert items["server_cert"] == server_cert.read_text()
    assert PASSPHRASE not in err and not any(line in err for line in key_lines(key))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("key of another certificate", "does not belong to the certificate"),
        ("certificate and key swapped", "not a PEM certificate"),
        ("key missing", "no such file"),
        ("daemon certificate is a key", "not a PEM certificate"),
        ("certificate in DER", "multipass_cert.der"),
    ],
)
def test_an_error_names_the_file_and_prints_nothing_to_stdout(
    case: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cert, key = write_pair(tmp_path / "mine")
    _, other_key = write_pair(tmp_path / "other")
    args = ["--cert", str(cert), "--key", str(key)]
    named = cert
    if case == "key of another certificate":
        args, named = ["--cert", str(cert), "--key", str(other_key)], other_key
    elif case == "certificate and key swapped":
        args, named = ["--cert", str(key), "--key", str(cert)], key
    elif case == "key missing":
        named = tmp_path / "nowhere.pem"
        args = ["--cert", str(cert), "--key", str(named)]
    elif case == "daemon certificate is a key":
        args, named = [*args, "--server-cert", str(other_key)], other_key
    elif case == "certificate in DER":
        named = tmp_path / "multipass_cert.der"
        der = x509.load_pem_x509_certificate(cert.read_bytes())
        named.write_bytes(der.public_bytes(serialization.Encoding.DER))
        args = ["--cert", str(named), "--key", str(key)]
    code, out, err = run(monkeypatch, capsys, *args, "--passphrase-stdin", stdin=PASSPHRASE)
    assert (code, out) == (1, "")
    assert str(named) in err and message in err
    assert PASSPHRASE not in err
    assert not any(line in err for line in key_lines(key) + key_lines(other_key))


def test_an_encrypted_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = write_pair(tmp_path)
    plain = serialization.load_pem_private_key(key.read_bytes(), password=None)
    key.write_bytes(
        plain.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    code, out, err = run(monkeypatch, capsys, "--cert", str(cert), "--key", str(key))
    assert (code, out) == (1, "")
    assert f"{key}: the key is encrypted" in err


def test_an_empty_passphrase_on_stdin_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = write_pair(tmp_path)
    code, out, err = run(
        monkeypatch, capsys, "--cert", str(cert), "--key", str(key), "--passphrase-stdin"
    )
    assert (code, out) == (1, "")
    assert "nothing was read from standard input" in err


def _ca_and_leaf(directory: Path) -> tuple[Path, Path]:
    """A root CA and a leaf it signed, laid out as current daemons write them."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Multipass Root CA")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])

    def build(subject: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(ca_key, hashes.SHA256())
        )

    ca_path = directory / "multipass_root_cert.pem"
    leaf_path = directory / "certificates" / "localhost.pem"
    leaf_path.parent.mkdir()
    ca_path.write_bytes(build(ca_name, ca_key).public_bytes(serialization.Encoding.PEM))
    leaf_path.write_bytes(build(leaf_name, leaf_key).public_bytes(serialization.Encoding.PEM))
    return ca_path, leaf_path


def test_the_daemons_root_ca_is_found_and_pinned_where_it_lies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = write_pair(tmp_path / "client")
    ca, _ = _ca_and_leaf(tmp_path / "multipassd")
    monkeypatch.setattr("reconciler.client_certs.root_cert_candidates", lambda: [ca])
    code, out, err = run(monkeypatch, capsys, "--cert", str(cert), "--key", str(key))
    assert code == 0, err
    assert json.loads(out)["Items"]["server_cert"] == ca.read_text()
    assert f"pinned the daemon's root CA found at {ca}" in err


def test_without_a_root_ca_here_it_says_what_to_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = write_pair(tmp_path / "client")
    missing = tmp_path / "nowhere" / "multipass_root_cert.pem"
    monkeypatch.setattr("reconciler.client_certs.root_cert_candidates", lambda: [missing])
    code, out, err = run(monkeypatch, capsys, "--cert", str(cert), "--key", str(key))
    assert code == 0, err
    assert "server_cert" not in json.loads(out)["Items"]
    assert "give --server-cert" in err and "multipass_root_cert.pem" in err


def test_pinning_the_daemons_leaf_instead_of_its_root_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = write_pair(tmp_path / "client")
    _, leaf = _ca_and_leaf(tmp_path / "multipassd")
    code, _out, err = run(
        monkeypatch, capsys, "--cert", str(cert), "--key", str(key), "--server-cert", str(leaf)
    )
    assert code == 0, err
    assert "warning:" in err and "not self-signed" in err and "multipass_root_cert.pem" in err
