"""The fleet: one multipassd client per Multipass host.

Hosts come from the host variables ``<prefix>/hosts/<host>`` (reconciler/hosts.py).

* **No host variable at all**: exactly one host, ``default``, the daemon of today's
  settings (``Settings.resolve_multipass``: MULTIPASS_* variables, else the items of
  ``<prefix>``). An existing single-host deployment changes nothing: same daemon, same
  instance names, the same launches in flight (``implicit_launch_limit``: the
  executor's launch_concurrency). A settings problem there is raised, as before.
* **Host variables**: exactly those hosts. The settings' daemon is then *not* a host
  unless a variable names it (a variable ``<prefix>/hosts/default`` keeps that host's
  instance names as they were). Each host's client credentials (``client_cert``,
  ``client_key``, ``passphrase``) default to the shared ones, read as
  ``resolve_multipass`` reads them: from MULTIPASS_CLIENT_CERT / MULTIPASS_CLIENT_KEY /
  MULTIPASS_PASSPHRASE when a client certificate is given that way, else from the items
  of ``<prefix>``. They are read when a host variable is new or changed, so an edit of
  the shared credentials alone applies at the next host edit or restart.

A host whose variable is invalid, or whose client cannot be built or connected, is
unusable (``problems()``, ``error()``) and the observer reports it unreachable with
that as its error; the other hosts are unaffected. A host that could not connect is
tried again at its next read.

A changed host variable is taken at the next ``refresh()``: when what the connection
depends on changed (address, certificates, names, credentials), that host's client is
closed (calls in flight get ``retire_grace`` seconds) and rebuilt; an edit of caps,
reserves, limits or the maintenance switches keeps the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.errors import ConfigError
from reconciler.hosts import (
    DEFAULT_MAX_PARALLEL_LAUNCHES,
    HostSource,
    HostSpec,
    HostUnavailable,
    host_path,
    parse_host_spec,
)
from reconciler.logs import redact, redact_pem
from reconciler.multipass.client import MultipassClient
from reconciler.multipass.settings import (
    CLIENT_CERT_NAME,
    CLIENT_KEY_NAME,
    MultipassSettings,
    default_client_dir,
    read_pem,
)
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import NotFound
from reconciler.ownership import DEFAULT_HOST
from reconciler.pools import PrefixListing
from reconciler.settings import Settings

log = logging.getLogger(__name__)

# Calls in flight on a client being replaced get this long (a launch's own deadline).
RETIRE_GRACE = 900.0

ClientFactory = Callable[[MultipassSettings], MultipassClient]
OnCall = Callable[[str, float, str | None], None]


@dataclass
class _Host:
    spec: HostSpec | None  # None: the variable is invalid (``problems`` says why)
    index: int = 0
    problems: tuple[str, ...] = ()
    settings: MultipassSettings | None = field(default=None, repr=False)
    client: MultipassClient | None = None
    error: Exception | None = None  # the last connect's failure


@dataclass(frozen=True)
class _Shared:
    """The shared client credentials and where they were looked for."""

    where: str
    cert: bytes | None = field(default=None, repr=False)
    key: bytes | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    problem: str | None = None


class Fleet:
    """Every host's spec and client; see the module's docstring for where hosts come from."""

    def __init__(
        self,
        nomad: NomadClient | None,
        settings: Settings | None,
        *,
        client_factory: ClientFactory = MultipassClient,
        retire_grace: float = RETIRE_GRACE,
        implicit_launch_limit: int = DEFAULT_MAX_PARALLEL_LAUNCHES,
    ) -> None:
        """``implicit_launch_limit``: max_parallel_launches of the implicit host ``default``
        (no host variable to set it): the executor's launch_concurrency, as before hosts."""
        self.nomad = nomad
        self.settings = settings
        self.source = HostSource(nomad, settings.prefix) if nomad is not None and settings else None
        self._factory = client_factory
        self.retire_grace = retire_grace
        self.implicit_launch_limit = implicit_launch_limit
        self._hosts: dict[str, _Host] = {}
        self._implicit: bool | None = None  # True: the settings' daemon; False: variables
        self._locks: dict[str, asyncio.Lock] = {}
        self._retired: list[MultipassClient] = []
        self._retiring: set[asyncio.Task[None]] = set()
        self._on_call: OnCall | None = None
        self.rpcs = 0  # calls made while connecting (authenticate), for Observer.reads

    @classmethod
    def single(cls, client: MultipassClient) -> Fleet:
        """One connected client as the host ``default``, with no host variables to read."""
        fleet = cls(None, None)
        address = getattr(getattr(client, "settings", None), "address", "")
        fleet._hosts = {DEFAULT_HOST: _Host(HostSpec(DEFAULT_HOST, address), client=client)}
        fleet._implicit = True
        return fleet

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def on_call(self) -> OnCall | None:
        """Called after every RPC of every host's client (metrics); set on clients built later."""
        return self._on_call

    @on_call.setter
    def on_call(self, on_call: OnCall | None) -> None:
        self._on_call = on_call
        for h in self._hosts.values():
            if h.client is not None:
                h.client.on_call = on_call

    # ------------------------------------------------------------ what the fleet is

    def names(self) -> list[str]:
        """Every host, usable or not, sorted."""
        return sorted(self._hosts)

    def hosts(self) -> dict[str, HostSpec]:
        """The hosts whose variable is valid (or the implicit ``default``), by name."""
        return {n: h.spec for n, h in sorted(self._hosts.items()) if h.spec is not None}

    def index(self, host: str) -> int | None:
        """The ModifyIndex of the host's variable as last read (0: the implicit host);
        None: not in the fleet. It moves whenever the host's connection may have."""
        h = self._hosts.get(host)
        return h.index if h is not None else None

    def spec(self, host: str) -> HostSpec | None:
        h = self._hosts.get(host)
        return h.spec if h is not None else None

    def problems(self) -> dict[str, tuple[str, ...]]:
        """The hosts whose variable is invalid (or unusable), with every problem."""
        return {n: h.problems for n, h in sorted(self._hosts.items()) if h.problems}

    def error(self, host: str) -> Exception | None:
        """Why the host's client could not connect the last time it was tried; None: it did."""
        h = self._hosts.get(host)
        return h.error if h is not None else None

    def launch_limit(self, host: str) -> int | None:
        """Launches in flight at once on the host's daemon (its max_parallel_launches).

        None for the implicit host (no variable to set it): the executor's own
        launch_concurrency bounds it, as before hosts.
        """
        if self._implicit:
            return None
        spec = self.spec(host)
        return spec.max_parallel_launches if spec is not None else DEFAULT_MAX_PARALLEL_LAUNCHES

    def _unavailable(self, host: str) -> HostUnavailable | None:
        h = self._hosts.get(host)
        if h is None:
            known = ", ".join(self.names()) or "none"
            return HostUnavailable(host, f"host {host!r} is not in the fleet (hosts: {known})")
        if h.problems:
            where = f" {self._path(host)}" if self.source is not None else ""
            return HostUnavailable(
                host, f"host {host}: invalid host variable{where}: " + "; ".join(h.problems)
            )
        return None

    def client(self, host: str) -> MultipassClient:
        """The host's connected client; HostUnavailable (temporary) naming the host otherwise."""
        unavailable = self._unavailable(host)
        if unavailable is not None:
            raise unavailable
        h = self._hosts[host]
        if h.client is None:
            why = f": {h.error}" if h.error is not None else " yet"
            raise HostUnavailable(host, f"host {host}: not connected to its multipassd{why}")
        return h.client

    async def connect(self, host: str) -> MultipassClient:
        """The host's client, connected now if it is not yet (the connect's error is raised)."""
        unavailable = self._unavailable(host)
        if unavailable is not None:
            raise unavailable
        h = self._hosts[host]
        async with self._locks.setdefault(host, asyncio.Lock()):
            if h.client is not None:
                return h.client
            assert h.settings is not None
            client = self._factory(h.settings)
            client.on_call = self._on_call
            if h.settings.passphrase:
                self.rpcs += 1  # connecting authenticates
            try:
                await client.connect()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    await client.close()
                if isinstance(exc, Exception):
                    h.error = exc
                raise
            if self._hosts.get(host) is not h:  # the variable changed meanwhile: not this one
                self._retire(client)
                raise HostUnavailable(host, f"host {host}: its variable changed while connecting")
            h.client, h.error = client, None
            return client

    def _path(self, host: str) -> str:
        assert self.settings is not None
        return host_path(self.settings.prefix, host)

    # ------------------------------------------------------------ reading the variables

    async def refresh(self, listing: PrefixListing | None = None) -> None:
        """Read ``<prefix>/hosts/`` (one list; changed variables only) and apply changes.

        ``listing``: the pass's list of ``<prefix>``, which holds the host variables.

        Raises what the settings raise when there is no host variable and the settings'
        daemon cannot be configured (ConfigError), and Nomad's errors.
        """
        if self.source is None or self.settings is None or self.nomad is None:
            return  # Fleet.single: a fixed client
        variables = await self.source.load(listing)
        if not variables:
            if self._implicit is not True:
                ms = await self.settings.resolve_multipass(self.nomad)
                _redact(ms)
                spec = HostSpec(
                    DEFAULT_HOST,
                    ms.address,
                    server_cert=ms.server_cert,
                    server_name=ms.server_name,
                    insecure_skip_verify=ms.insecure_skip_verify,
                    max_parallel_launches=self.implicit_launch_limit,
                )
                self._replace({DEFAULT_HOST: _Host(spec, settings=ms)})
                self._implicit = True
            return
        carried = {} if self._implicit is not False else self._hosts
        changed = [
            v for v in variables if v.host not in carried or carried[v.host].index != v.index
        ]
        shared = await self._shared() if changed else None
        hosts: dict[str, _Host] = {}
        for v in variables:
            old = carried.get(v.host)
            if old is not None and old.index == v.index:
                hosts[v.host] = old
                continue
            assert shared is not None
            hosts[v.host] = self._build(v.host, v.index, v.items, old, shared)
        self._implicit = False
        self._replace(hosts)

    def _build(
        self, host: str, index: int, items: Mapping[str, str], old: _Host | None, shared: _Shared
    ) -> _Host:
        parsed = parse_host_spec(host, items, index)
        if isinstance(parsed, tuple):
            log.warning("host %s: invalid host variable: %s", host, "; ".join(parsed))
            return _Host(None, index, problems=parsed)
        settings = _settings_for(parsed, shared)
        if isinstance(settings, tuple):
            log.warning("host %s: %s", host, "; ".join(settings))
            return _Host(parsed, index, problems=settings)
        _redact(settings)
        if old is not None and old.settings == settings:
            # Caps, reserves, limits or switches edited: the connection stays.
            return _Host(parsed, index, settings=settings, client=old.client, error=old.error)
        return _Host(parsed, index, settings=settings)

    def _replace(self, hosts: dict[str, _Host]) -> None:
        """Take ``hosts`` as the fleet; retire every client not carried over."""
        kept = {id(h.client) for h in hosts.values() if h.client is not None}
        for h in self._hosts.values():
            if h.client is not None and id(h.client) not in kept:
                self._retire(h.client)
        self._hosts = hosts
        self._locks = {n: lock for n, lock in self._locks.items() if n in hosts}

    def _retire(self, client: MultipassClient) -> None:
        """Close a client no longer used, letting its calls in flight finish first."""
        self._retired.append(client)
        task = asyncio.get_running_loop().create_task(client.close(grace=self.retire_grace))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _shared(self) -> _Shared:
        """The shared client credentials, as Settings.resolve_multipass finds them."""
        assert self.settings is not None and self.nomad is not None
        env = self.settings.env
        if env.get("MULTIPASS_CLIENT_CERT") or env.get("MULTIPASS_CLIENT_KEY"):
            where = "MULTIPASS_CLIENT_CERT / MULTIPASS_CLIENT_KEY"
            try:
                cert = read_pem(
                    env.get("MULTIPASS_CLIENT_CERT")
                    or str(default_client_dir() / CLIENT_CERT_NAME),
                    "MULTIPASS_CLIENT_CERT",
                )
                key = read_pem(
                    env.get("MULTIPASS_CLIENT_KEY") or str(default_client_dir() / CLIENT_KEY_NAME),
                    "MULTIPASS_CLIENT_KEY",
                )
            except ConfigError as exc:
                return _Shared(where, problem=str(exc))
            return _Shared(where, cert, key, env.get("MULTIPASS_PASSPHRASE") or None)
        where = f"the variable {self.settings.prefix}"
        try:
            items = (await self.nomad.get_var(self.settings.prefix)).items
        except NotFound:
            return _Shared(where)
        finally:
            if self.source is not None:
                self.source.reads += 1
        cert_item, key_item = items.get("client_cert"), items.get("client_key")
        return _Shared(
            where,
            cert_item.encode() if cert_item else None,
            key_item.encode() if key_item else None,
            items.get("passphrase") or None,
        )

    async def close(self) -> None:
        """Close every client now, retired ones included."""
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        clients = [h.client for h in self._hosts.values() if h.client is not None]
        for client in [*clients, *self._retired]:
            with contextlib.suppress(Exception):
                await client.close()
        self._retired.clear()
        for h in self._hosts.values():
            h.client = None


def _settings_for(spec: HostSpec, shared: _Shared) -> MultipassSettings | tuple[str, ...]:
    """The host's connection settings, its own credentials or else the shared ones."""
    cert = spec.client_cert if spec.client_cert is not None else shared.cert
    key = spec.client_key if spec.client_key is not None else shared.key
    if cert is None or key is None:
        why = f" ({shared.problem})" if shared.problem else ""
        return (
            "client_cert, client_key: not in this host's variable, and none shared in "
            f"{shared.where}{why}; store them there (see `reconciler secrets import`) or "
            "give this host its own",
        )
    passphrase = spec.passphrase if spec.passphrase is not None else shared.passphrase
    try:
        return MultipassSettings(
            address=spec.address,
            client_cert=cert,
            client_key=key,
            server_cert=spec.server_cert,
            server_name=spec.server_name,
            insecure_skip_verify=spec.insecure_skip_verify,
            passphrase=passphrase,
        )
    except ConfigError as exc:
        return (str(exc),)


def _redact(settings: MultipassSettings) -> None:
    redact(settings.passphrase)
    redact_pem(settings.client_key)
