"""How to reach and trust multipassd.

The daemon speaks gRPC over TLS on a unix socket (Linux snap) or TCP (macOS,
Windows, or `local.bind_address`). The client presents its own certificate;
the daemon trusts it once `authenticate` succeeded with the passphrase.

Current daemons (src/cert/ssl_cert_provider.cpp) make their own root CA, "Multipass
Root CA" (``multipass_root_cert.pem``), and a leaf certificate signed by it
(``certificates/<name>.pem``) for the host part of their ``--address``
(daemon_config.cpp: server_name_from; ``localhost`` for a unix socket). Pin the root
CA (`server_cert`): the leaf is checked against it and against that host name, which
is derived from the address the same way unless MULTIPASS_TLS_SERVER_NAME says
otherwise. The Go plugin this replaces switched verification off; here that takes
an explicit `insecure_skip_verify`, which trusts whatever certificate the daemon
shows on first connect and logs a warning every time.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import ConfigError

# Where multipass itself keeps things, by platform.
LINUX_SOCKET = "unix:/var/snap/multipass/common/multipass_socket"
TCP_DEFAULT = "localhost:50051"
LINUX_CLIENT_DIR = Path("~/snap/multipass/current/data/multipass-client-certificate")
MACOS_CLIENT_DIR = Path("~/Library/Application Support/multipass-client-certificate")
# The root CA a client pins, where current daemons write it (platform_*.cpp:
# get_root_cert_dir): the snap's on Linux, /usr/local/etc on macOS, ProgramData on Windows.
LINUX_ROOT_CERT = Path("/var/snap/multipass/common/data/multipassd/multipass_root_cert.pem")
MACOS_ROOT_CERT = Path("/usr/local/etc/multipassd/multipass_root_cert.pem")
WINDOWS_ROOT_CERT = Path("C:/ProgramData/Multipass/data/multipass_root_cert.pem")
CLIENT_CERT_NAME = "multipass_cert.pem"
CLIENT_KEY_NAME = "multipass_cert_key.pem"


def server_name_from(address: str) -> str:
    """The name the daemon's certificate is issued for, from the address it listens on.

    As daemon_config.cpp: server_name_from: what comes before the first ':', and
    "localhost" for a unix socket ("0.0.0.0" for 0.0.0.0:50051). A bracketed IPv6
    address is taken whole, without its brackets.
    """
    if address.startswith("unix:"):
        return "localhost"
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    return address.split(":", 1)[0]


def default_root_cert(system: str | None = None) -> Path:
    system = system or platform.system()
    if system == "Darwin":
        return MACOS_ROOT_CERT
    if system == "Windows":
        return WINDOWS_ROOT_CERT
    return LINUX_ROOT_CERT


def default_client_dir() -> Path:
    return (MACOS_CLIENT_DIR if platform.system() == "Darwin" else LINUX_CLIENT_DIR).expanduser()


def default_address() -> str:
    return LINUX_SOCKET if platform.system() == "Linux" else TCP_DEFAULT


@dataclass(frozen=True)
class MultipassSettings:
    address: str
    client_cert: bytes = field(repr=False)
    client_key: bytes = field(repr=False)
    server_cert: bytes | None = field(default=None, repr=False)
    server_name: str | None = None  # None: server_name_from(address)
    insecure_skip_verify: bool = False
    passphrase: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.server_cert is None and not self.insecure_skip_verify:
            raise ConfigError(
                "multipassd's certificate is not pinned: set MULTIPASS_SERVER_CERT to the daemon's "
                f"root CA (on a Linux host: {LINUX_ROOT_CERT}), or put it in the "
                "`server_cert` item of the reconciler variable; "
                "to trust whatever the daemon presents instead "
                "(not recommended), set MULTIPASS_SKIP_VERIFY=true"
            )

    @property
    def tls_server_name(self) -> str:
        """The name the daemon's certificate must carry: the override, or the address's host."""
        return self.server_name or server_name_from(self.address)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        address: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        server_cert: str | None = None,
        passphrase: str | None = None,
        insecure_skip_verify: bool | None = None,
    ) -> MultipassSettings:
        """Settings from MULTIPASS_* variables; arguments (from flags) win when given."""
        env = os.environ if env is None else env
        cert_path = (
            client_cert
            or env.get("MULTIPASS_CLIENT_CERT")
            or str(default_client_dir() / CLIENT_CERT_NAME)
        )
        key_path = (
            client_key
            or env.get("MULTIPASS_CLIENT_KEY")
            or str(default_client_dir() / CLIENT_KEY_NAME)
        )
        pin_path = server_cert or env.get("MULTIPASS_SERVER_CERT")
        skip = insecure_skip_verify
        if skip is None:
            skip = env.get("MULTIPASS_SKIP_VERIFY", "").lower() in ("1", "true", "yes")
        return cls(
            address=address or env.get("MULTIPASS_SERVER_ADDRESS") or default_address(),
            client_cert=read_pem(cert_path, "MULTIPASS_CLIENT_CERT"),
            client_key=read_pem(key_path, "MULTIPASS_CLIENT_KEY"),
            server_cert=read_pem(pin_path, "MULTIPASS_SERVER_CERT") if pin_path else None,
            server_name=env.get("MULTIPASS_TLS_SERVER_NAME") or None,
            insecure_skip_verify=skip,
            passphrase=passphrase if passphrase is not None else env.get("MULTIPASS_PASSPHRASE"),
        )


def read_pem(path: str, setting: str) -> bytes:
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{setting}: {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {p}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{setting}: {p} is not a PEM file")
    return data
