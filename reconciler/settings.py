"""Connection settings from flags, the environment, and the reconciler's own variable.

Nomad's follow the nomad CLI (NOMAD_ADDR, NOMAD_TOKEN, ...). Multipass's come
from MULTIPASS_* variables when a client certificate is given that way;
otherwise from the `<prefix>` Nomad variable (items client_cert, client_key,
passphrase, optional multipass_address and server_cert), as a deployed job
keeps them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.errors import ConfigError
from reconciler.multipass.settings import MultipassSettings, default_address
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import NotFound
from reconciler.nomad.settings import NomadSettings
from reconciler.pools import DEFAULT_PREFIX


@dataclass(frozen=True)
class Settings:
    prefix: str
    nomad: NomadSettings
    multipass_address: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    resync: float = 30.0

    async def resolve_multipass(self, nomad: NomadClient) -> MultipassSettings:
        """Multipass settings from the environment, else from the `<prefix>` variable."""
        if self.env.get("MULTIPASS_CLIENT_CERT") or self.env.get("MULTIPASS_CLIENT_KEY"):
            return MultipassSettings.from_env(self.env, address=self.multipass_address)
        try:
            secrets = (await nomad.get_var(self.prefix)).items
        except NotFound:
            raise ConfigError(
                f"no Multipass client certificate: set MULTIPASS_CLIENT_CERT and "
                f"MULTIPASS_CLIENT_KEY, or store them in the Nomad variable {self.prefix} "
                "(see `reconciler secrets import`)"
            ) from None
        missing = [k for k in ("client_cert", "client_key") if not secrets.get(k)]
        if missing:
            raise ConfigError(f"variable {self.prefix}: missing item(s) {', '.join(missing)}")
        skip = self.env.get("MULTIPASS_SKIP_VERIFY", "").lower() in ("1", "true", "yes")
        server_cert = secrets.get("server_cert")
        return MultipassSettings(
            address=self.multipass_address
            or self.env.get("MULTIPASS_SERVER_ADDRESS")
            or secrets.get("multipass_address")
            or default_address(),
            client_cert=secrets["client_cert"].encode(),
            client_key=secrets["client_key"].encode(),
            server_cert=server_cert.encode() if server_cert else None,
            server_name=self.env.get("MULTIPASS_TLS_SERVER_NAME") or None,
            insecure_skip_verify=skip,
            passphrase=secrets.get("passphrase") or None,
        )


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    nomad = NomadSettings.from_env(
        env,
        address=getattr(args, "nomad_addr", None),
        token=getattr(args, "nomad_token", None),
        namespace=getattr(args, "nomad_namespace", None),
        region=getattr(args, "nomad_region", None),
        ca_cert=getattr(args, "nomad_cacert", None),
        client_cert=getattr(args, "nomad_client_cert", None),
        client_key=getattr(args, "nomad_client_key", None),
        skip_verify=getattr(args, "nomad_skip_verify", None),
        tls_server_name=getattr(args, "nomad_tls_server_name", None),
    )
    prefix = getattr(args, "prefix", None) or env.get("RECONCILER_PREFIX") or DEFAULT_PREFIX
    return Settings(
        prefix=prefix.strip("/"),
        nomad=nomad,
        multipass_address=getattr(args, "multipass_address", None),
        env=env,
        resync=getattr(args, "resync", 30.0),
    )
