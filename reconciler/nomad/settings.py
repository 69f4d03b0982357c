"""How to reach Nomad's HTTP API, following the nomad CLI's own environment variables.

``NOMAD_ADDR``, ``NOMAD_TOKEN``, ``NOMAD_CACERT``, ``NOMAD_CLIENT_CERT``,
``NOMAD_CLIENT_KEY``, ``NOMAD_NAMESPACE``, ``NOMAD_REGION``,
``NOMAD_SKIP_VERIFY`` and ``NOMAD_TLS_SERVER_NAME`` mean here what they mean
to ``nomad``; flags given on the command line win over them.

The token is a secret: it is kept out of ``repr``/``str`` so that logging the
settings, or an exception that carries them, never leaks it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.errors import ConfigError

DEFAULT_ADDRESS = "http://127.0.0.1:4646"

_TRUE = {"1", "t", "true", "yes", "y", "on"}
_FALSE = {"", "0", "f", "false", "no", "n", "off"}


@dataclass(frozen=True)
class NomadSettings:
    address: str = DEFAULT_ADDRESS
    token: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    namespace: str | None = None
    region: str | None = None
    skip_verify: bool = False
    tls_server_name: str | None = None
    # Seconds allowed for one ordinary call; blocking queries get their wait on top.
    timeout: float = 30.0
    # Attempts per call when the server is unavailable (first try included).
    attempts: int = 4
    # Cap, in seconds, on the jittered exponential backoff between attempts.
    backoff_max: float = 5.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.address)
        unix_ok = parts.scheme == "unix" and bool(parts.path)
        if not unix_ok and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ConfigError(
                f"NOMAD_ADDR: {self.address!r} is not an http(s) or unix:// address; "
                f"expected e.g. {DEFAULT_ADDRESS}, https://nomad.example:4646 or "
                "unix:///secrets/api.sock (the Task API socket inside a Nomad task)"
            )
        if (self.client_cert is None) != (self.client_key is None):
            raise ConfigError(
                "NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be given together "
                f"(got only {'NOMAD_CLIENT_CERT' if self.client_cert else 'NOMAD_CLIENT_KEY'})"
            )
        for value, var in (
            (self.ca_cert, "NOMAD_CACERT"),
            (self.client_cert, "NOMAD_CLIENT_CERT"),
            (self.client_key, "NOMAD_CLIENT_KEY"),
        ):
            if value is not None and not Path(value).expanduser().is_file():
                raise ConfigError(f"{var}: {value} does not exist or is not a file")
        if self.timeout <= 0:
            raise ConfigError(f"timeout: {self.timeout} must be positive")
        if self.attempts < 1:
            raise ConfigError(f"attempts: {self.attempts} must be at least 1")

    def __repr__(self) -> str:
        # Say whether a token is set, never what it is.
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in (
                "address",
                "namespace",
                "region",
                "ca_cert",
                "client_cert",
                "client_key",
                "skip_verify",
                "tls_server_name",
            )
        )
        return f"NomadSettings({shown}, token={'<set>' if self.token else None})"

    __str__ = __repr__

    @property
    def unix_socket(self) -> str | None:
        """The socket path of a ``unix://`` address (Nomad's Task API), else None."""
        parts = urlsplit(self.address)
        return parts.path if parts.scheme == "unix" else None

    @property
    def base_url(self) -> str:
        # Over a unix socket the host part is only a placeholder for HTTP's sake.
        return "http://localhost" if self.unix_socket else self.address.rstrip("/")

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        address: str | None = None,
        token: str | None = None,
        ca_cert: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        namespace: str | None = None,
        region: str | None = None,
        skip_verify: bool | None = None,
        tls_server_name: str | None = None,
    ) -> NomadSettings:
        """Settings from NOMAD_* variables; keyword arguments (from flags) win when not None."""
        env = os.environ if env is None else env

        def pick(flag: str | None, var: str) -> str | None:
            if flag is not None:
                return flag
            value = env.get(var, "").strip()
            return value or None

        if skip_verify is None:
            skip_verify = parse_bool(env.get("NOMAD_SKIP_VERIFY", ""), "NOMAD_SKIP_VERIFY")
        addr = pick(address, "NOMAD_ADDR") or DEFAULT_ADDRESS
        if "://" not in addr:
            # The nomad CLI accepts a bare host:port and assumes plain http.
            addr = "http://" + addr
        return cls(
            address=addr,
            token=pick(token, "NOMAD_TOKEN"),
            ca_cert=pick(ca_cert, "NOMAD_CACERT"),
            client_cert=pick(client_cert, "NOMAD_CLIENT_CERT"),
            client_key=pick(client_key, "NOMAD_CLIENT_KEY"),
            namespace=pick(namespace, "NOMAD_NAMESPACE"),
            region=pick(region, "NOMAD_REGION"),
            skip_verify=skip_verify,
            tls_server_name=pick(tls_server_name, "NOMAD_TLS_SERVER_NAME"),
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx should verify https with; True means the system's default trust."""
        if not self.address.startswith("https://"):
            return True
        ctx = ssl.create_default_context(
            cafile=str(Path(self.ca_cert).expanduser()) if self.ca_cert else None
        )
        if self.skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert and self.client_key:
            try:
                ctx.load_cert_chain(
                    str(Path(self.client_cert).expanduser()),
                    str(Path(self.client_key).expanduser()),
                )
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(
                    f"NOMAD_CLIENT_CERT/NOMAD_CLIENT_KEY: cannot load {self.client_cert} "
                    f"with {self.client_key}: {exc}"
                ) from None
        return ctx


def parse_bool(text: str, setting: str) -> bool:
    """Booleans the way Go's strconv.ParseBool (which nomad uses) reads them, plus yes/no."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{setting}: {text!r} is not a boolean; use true or false")
