"""What a new VM needs to join the Nomad cluster, read from the cluster at launch time.

* **servers**: a pool that sets no ``servers`` in ``cloud_init_vars`` joins the
  servers Nomad lists (``GET /v1/status/peers``: their RPC addresses).
* **TLS**: when the reconciler's variable ``<prefix>`` holds ``nomad_ca_cert``,
  ``nomad_client_cert`` and ``nomad_client_key`` (PEM; ``nomad tls cert create
  -client`` makes the pair), the shipped template writes them and turns on TLS
  for the client's RPC and HTTP, as a secured cluster requires.

Neither counts toward the template hash: a server replaced or a certificate
renewed must not roll every VM (a running client follows the servers by itself;
members built later get the new certificate). Both are read only in a pass where
a pool launches; the TLS material only when its variable moved since (JoinReader).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from reconciler.errors import ConfigError
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import NotFound
from reconciler.spec import PoolSpec, needs_servers, with_servers
from reconciler.tasks import started

TLS_ITEMS = ("nomad_ca_cert", "nomad_client_cert", "nomad_client_key")


@dataclass(frozen=True)
class ClusterJoin:
    servers: tuple[str, ...] = ()  # discovered; empty when no pool needed them
    tls: Mapping[str, str] | None = None  # {"ca", "cert", "key"} PEM texts


def uses_shipped_template(spec: PoolSpec) -> bool:
    return spec.cloud_init is None


def tls_from_items(prefix: str, items: Mapping[str, str]) -> Mapping[str, str] | None:
    """The TLS material in the `<prefix>` variable; None when it holds none of it."""
    present = [k for k in TLS_ITEMS if items.get(k, "").strip()]
    if not present:
        return None
    missing = [k for k in TLS_ITEMS if k not in present]
    if missing:
        raise ConfigError(
            f"variable {prefix}: {', '.join(present)} set without {', '.join(missing)}; "
            f"a TLS Nomad client needs all of {', '.join(TLS_ITEMS)} (docs/spec.md)"
        )
    not_pem = [k for k in TLS_ITEMS if "-----BEGIN " not in items[k]]
    if not_pem:
        raise ConfigError(f"variable {prefix}: {', '.join(not_pem)} must be PEM text")
    return MappingProxyType(
        {
            "ca": items["nomad_ca_cert"],
            "cert": items["nomad_client_cert"],
            "key": items["nomad_client_key"],
        }
    )


async def read_join(nomad: NomadClient, prefix: str, *, servers: bool) -> ClusterJoin:
    """The servers (if ``servers``) and the TLS material; ReconcilerError when unreadable."""
    return await JoinReader(nomad, prefix).read(servers=servers)


class JoinReader:
    """How launches join the cluster, for a loop that reads it pass after pass.

    The TLS material is read again only when the variable ``<prefix>`` moved: a pass
    that listed it passes its ModifyIndex (None: not known, read it). The servers are
    asked each time they are needed: Nomad's peer list carries no index.
    """

    def __init__(self, nomad: NomadClient, prefix: str) -> None:
        self.nomad = nomad
        self.prefix = prefix
        self._tls: tuple[int, Mapping[str, str] | None] | None = None  # (ModifyIndex, TLS)
        self._ahead: asyncio.Task[Mapping[str, str] | None] | None = None  # see read_ahead

    async def read(self, *, servers: bool, index: int | None = None) -> ClusterJoin:
        """ReconcilerError when unreadable; ConfigError when the TLS items are invalid."""
        peers: tuple[str, ...] = tuple(await self.nomad.status_peers()) if servers else ()
        return ClusterJoin(peers, await self._tls_at(index))

    def read_ahead(self, index: int | None) -> None:
        """Start the TLS read that ``read(index=index)`` would make, before it is asked for.

        For a pass that may launch soon (a pool was edited): the read runs beside the
        pass's planning instead of after it. The next ``read`` takes it; ``forget_ahead``
        (at the next pass) drops one nobody took, so no pass uses an older pass's read.
        """
        if self._ahead is None and not self._known(index):
            self._ahead = started(self._read_tls())

    def forget_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()  # nothing once it is done
            self._ahead = None

    def _known(self, index: int | None) -> bool:
        return index is not None and self._tls is not None and self._tls[0] == index

    async def _tls_at(self, index: int | None) -> Mapping[str, str] | None:
        if self._known(index):
            assert self._tls is not None
            return self._tls[1]
        ahead, self._ahead = self._ahead, None
        return await (ahead if ahead is not None else self._read_tls())

    async def _read_tls(self) -> Mapping[str, str] | None:
        try:
            var = await self.nomad.get_var(self.prefix)
        except NotFound:
            self._tls = None
            return None
        tls = tls_from_items(self.prefix, var.items)  # an invalid one is not kept
        self._tls = (var.modify_index, tls)
        return tls


def for_launch(spec: PoolSpec, join: ClusterJoin) -> PoolSpec:
    """``spec`` as its launches render it; the template hash stays the spec's own."""
    if not uses_shipped_template(spec):
        return spec
    if needs_servers(spec):
        spec = with_servers(spec, join.servers)
    if join.tls is not None:
        variables = MappingProxyType({**spec.cloud_init_vars, "tls": dict(join.tls)})
        spec = dataclasses.replace(spec, cloud_init_vars=variables)
    return spec


def join_problem(spec: PoolSpec, join: ClusterJoin) -> str | None:
    """Why ``spec`` cannot launch with ``join``; None: it can."""
    if needs_servers(spec) and not join.servers:
        return "Nomad lists no servers (GET /v1/status/peers is empty)"
    return None
