"""`reconciler secrets import`: the Multipass client certificate as a Nomad Variable.

A deployed reconciler reads its multipassd credentials from the `<prefix>`
variable (items client_cert, client_key, passphrase, server_cert,
multipass_address; see reconciler.settings). This builds the JSON that
`nomad var put -in json <prefix> -` takes, from the certificate the multipass
CLI created on this machine, found where multipass keeps it, and checked: a
certificate, an unencrypted private key, and the key belongs to the certificate.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from reconciler.errors import ConfigError
from reconciler.multipass.settings import default_root_cert

CERT_FILE = "multipass_cert.pem"
KEY_FILE = "multipass_cert_key.pem"


def candidate_dirs(env: Mapping[str, str], platform: str = sys.platform) -> list[Path]:
    """Where the multipass CLI keeps its client certificate, most likely first."""
    home = Path(env.get("HOME", str(Path.home())))
    if platform == "darwin":
        return [home / "Library/Application Support/multipass-client-certificate"]
    if platform.startswith("win"):
        appdata = Path(env.get("APPDATA", str(home / "AppData/Roaming")))
        return [appdata / "multipass-client-certificate", appdata / "multipass/client-certificate"]
    data = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else home / ".local/share"
    snap = home / "snap/multipass/current/data"
    return [
        snap / "multipass-client-certificate",  # the snap, the usual install on Linux
        snap / "multipass/client-certificate",
        data / "multipass-client-certificate",
        data / "multipass/client-certificate",
    ]


def find_client_certificate(
    env: Mapping[str, str] | None = None, platform: str = sys.platform
) -> tuple[Path, Path]:
    """The (certificate, key) files of the first location that has both."""
    dirs = candidate_dirs(os.environ if env is None else env, platform)
    for d in dirs:
        if (d / CERT_FILE).is_file() and (d / KEY_FILE).is_file():
            return d / CERT_FILE, d / KEY_FILE
    looked = "\n  ".join(str(d) for d in dirs)
    raise ConfigError(
        f"no Multipass client certificate found; looked in:\n  {looked}\n"
        "run `multipass list` once to create it, or give --cert and --key"
    )


def load_pair(cert_path: Path, key_path: Path) -> tuple[str, str]:
    """The PEM texts of a certificate and its key, checked to belong together."""
    cert_pem, key_pem = _read(cert_path, "certificate"), _read(key_path, "key")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        raise ConfigError(f"{cert_path}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise ConfigError(f"{key_path}: the key is encrypted; multipassd needs it plain") from None
    except ValueError:
        raise ConfigError(f"{key_path}: not a PEM private key") from None
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    if key.public_key().public_bytes(pem, raw) != cert.public_key().public_bytes(pem, raw):
        raise ConfigError(f"{key_path}: this key does not belong to the certificate {cert_path}")
    return cert_pem, key_pem


def load_certificate(path: Path) -> str:
    text = _read(path, "daemon certificate")
    try:
        x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate") from None
    return text


def root_cert_candidates() -> list[Path]:
    """Where this machine's daemon keeps the root CA a client pins (current daemons)."""
    return [default_root_cert()]


def find_root_cert(candidates: list[Path] | None = None) -> tuple[Path | None, str]:
    """The daemon's root CA to pin, if one is here and readable, and what to tell the user.

    The snap keeps it readable by root only: then the note says how to get it in.
    """
    for path in candidates if candidates is not None else root_cert_candidates():
        if not path.exists():
            continue
        if os.access(path, os.R_OK):
            return path, f"pinned the daemon's root CA found at {path}"
        return None, (
            f"the daemon's root CA is at {path} but only root can read it: run this with "
            f"sudo, or copy it and give --server-cert"
        )
    where = ", ".join(str(p) for p in candidates or root_cert_candidates())
    return None, (
        f"no daemon root CA here ({where}): give --server-cert with the daemon host's "
        "multipass_root_cert.pem, or the reconciler will refuse an unpinned daemon"
    )


def pin_warning(path: Path, text: str) -> str | None:
    """Why a certificate given to pin is likely the wrong one; None when it looks right.

    A client verifies the daemon's leaf against the pinned certificate as its trust
    anchor: the root CA (multipass_root_cert.pem) or, from older daemons, their
    self-signed certificate. A leaf issued by a CA is not an anchor.
    """
    cert = x509.load_pem_x509_certificate(text.encode())
    if cert.issuer == cert.subject:
        return None
    return (
        f"{path} is issued by {cert.issuer.rfc4514_string()}, not self-signed: it is a "
        "leaf (such as certificates/localhost.pem); pin the daemon's multipass_root_cert.pem"
    )


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (the {what})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc}") from None


def variable_json(
    cert_pem: str,
    key_pem: str,
    *,
    passphrase: str | None = None,
    server_cert_pem: str | None = None,
    address: str | None = None,
) -> str:
    """The JSON body for `nomad var put -in json <prefix> -`."""
    items = {"client_cert": cert_pem, "client_key": key_pem}
    if passphrase:
        items["passphrase"] = passphrase
    if server_cert_pem:
        items["server_cert"] = server_cert_pem
    if address:
        items["multipass_address"] = address
    return json.dumps({"Items": items}, indent=2)


def read_passphrase(stream: TextIO | None = None) -> str:
    """One line from stdin (a pipe or a prompt-less terminal), without its newline."""
    passphrase = (stream or sys.stdin).readline().rstrip("\r\n")
    if not passphrase:
        raise ConfigError("--passphrase-stdin: nothing was read from standard input")
    return passphrase
