"""Multipass hosts as Nomad Variables: ``<prefix>/hosts/<host>``, one per daemon.

A host variable says how to reach one multipassd (``address``, the certificate to
pin, optionally its own client credentials) and how much of that machine the
reconciler may use (caps, reserves, the CPU overcommit factor, launches in flight)
and whether new members may go there (``cordoned``, ``evacuate``). Every item is a
string, as Nomad stores them; every problem is collected and names the item, what
is wrong and what is allowed, as reconciler/spec.py does for pools. A bad host
variable makes that host unusable, never the others (reconciler/fleet.py).

With no host variable at all, the one daemon of today's settings is host
``default`` (see reconciler/fleet.py), so a single-host deployment needs none.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from reconciler import ownership
from reconciler.errors import TemporaryError
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import NotFound
from reconciler.pools import DEFAULT_PREFIX, PrefixListing, VariableWatch
from reconciler.spec import Item
from reconciler.units import format_size, parse_bool, parse_size

GiB = 1024**3
DEFAULT_RESERVE_MEMORY = 1 * GiB
DEFAULT_RESERVE_DISK = 10 * GiB
DEFAULT_CPU_OVERCOMMIT = 4.0
# multipassd has crashed under ten launches at once (canonical/multipass#3336).
DEFAULT_MAX_PARALLEL_LAUNCHES = 2
MAX_CPU_OVERCOMMIT = 64.0
MAX_PARALLEL_LAUNCHES = 64
MAX_HOST_CPUS = 4096


def hosts_prefix(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/hosts/"


def host_path(prefix: str, host: str) -> str:
    return hosts_prefix(prefix) + host


class HostUnavailable(TemporaryError):
    """No client for this host now: not in the fleet, its variable invalid, or not connected."""

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(message)


# The host variable's reference (docs are written from the same facts, FLEET.md's table).
HOST_ITEMS: tuple[Item, ...] = (
    Item("address", "string", None, "the daemon's gRPC address: host:port or unix:/path"),
    Item(
        "server_cert",
        "PEM",
        None,
        "the daemon's root CA to pin; required unless insecure_skip_verify=true",
    ),
    Item("server_name", "string", "<host part of address>", "TLS name to check"),
    Item("client_cert", "PEM", "<the client_cert of <prefix>>", "this host's client cert"),
    Item("client_key", "PEM", "<the client_key of <prefix>>", "this host's client key"),
    Item("passphrase", "string", "<the passphrase of <prefix>>", "this daemon's passphrase"),
    Item("insecure_skip_verify", "bool", "false", "trust whatever the daemon presents"),
    Item("cpus", "int", "<daemon_info>", f"use at most this many host CPUs, 1..{MAX_HOST_CPUS}"),
    Item("memory", "size", "<daemon_info>", "use at most this much of the host's memory"),
    Item("disk", "size", "<daemon_info>", "use at most this much of the daemon's disk"),
    Item("reserve_memory", "size", "1G", "memory kept free for the host and VMs not ours"),
    Item("reserve_disk", "size", "10G", "disk kept free for the host and VMs not ours"),
    Item(
        "cpu_overcommit",
        "float",
        "4",
        f"vCPUs placed per host CPU, 1..{MAX_CPU_OVERCOMMIT:g}",
    ),
    Item(
        "max_parallel_launches",
        "int",
        str(DEFAULT_MAX_PARALLEL_LAUNCHES),
        f"launches in flight on this daemon at once, 1..{MAX_PARALLEL_LAUNCHES}",
    ),
    Item("cordoned", "bool", "false", "no new members are placed here"),
    Item("evacuate", "bool", "false", "members here are replaced elsewhere"),
)
HOST_ITEM_NAMES = tuple(i.name for i in HOST_ITEMS)


@dataclass(frozen=True)
class HostSpec:
    """One host as its variable says (or, for the implicit host ``default``, the settings).

    ``client_cert``, ``client_key`` and ``passphrase`` are None when the variable has none:
    the shared ones of ``<prefix>`` apply (reconciler/fleet.py). ``cpus``, ``memory`` and
    ``disk`` are caps, None when not set (the daemon's own figures then).
    """

    name: str
    address: str
    index: int = 0  # the variable's ModifyIndex; 0 for the implicit host
    server_cert: bytes | None = field(default=None, repr=False)
    server_name: str | None = None
    client_cert: bytes | None = field(default=None, repr=False)
    client_key: bytes | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    insecure_skip_verify: bool = False
    cpus: int | None = None
    memory: int | None = None
    disk: int | None = None
    reserve_memory: int = DEFAULT_RESERVE_MEMORY
    reserve_disk: int = DEFAULT_RESERVE_DISK
    cpu_overcommit: float = DEFAULT_CPU_OVERCOMMIT
    max_parallel_launches: int = DEFAULT_MAX_PARALLEL_LAUNCHES
    cordoned: bool = False
    evacuate: bool = False


def usable_capacity(spec: HostSpec, cpus: int, memory: int, disk: int) -> tuple[int, int, int]:
    """What the reconciler may place on the host in all: (vCPUs, memory bytes, disk bytes).

    From the daemon's totals (daemon_info), each capped by the variable, less the
    reserves; CPUs (never reserved) multiplied by the overcommit factor and rounded
    down. Never negative: a reserve larger than the host leaves nothing.
    """
    host_cpus = min(cpus, spec.cpus) if spec.cpus is not None else cpus
    host_memory = min(memory, spec.memory) if spec.memory is not None else memory
    host_disk = min(disk, spec.disk) if spec.disk is not None else disk
    return (
        max(0, math.floor(host_cpus * spec.cpu_overcommit)),
        max(0, host_memory - spec.reserve_memory),
        max(0, host_disk - spec.reserve_disk),
    )


# ------------------------------------------------------------ parsing


def _address(raw: str) -> str:
    s = raw.strip()
    if s.startswith("unix:"):
        path = s[len("unix:") :]
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ValueError(f"{raw!r} is not unix:/absolute/path")
        return s
    host, sep, port = s.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if (
        not sep
        or not host
        or any(c.isspace() or c in "/[]" for c in host)
        or not (port.isascii() and port.isdigit())
        or not 1 <= int(port) <= 65535
    ):
        raise ValueError(
            f"{raw!r} is not host:port (port 1..65535) or unix:/path, such as "
            "192.168.1.10:50051 or unix:/var/snap/multipass/common/multipass_socket"
        )
    return s


def _pem_certificate(raw: str) -> bytes:
    data = raw.strip().encode()
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("is not a PEM certificate (-----BEGIN CERTIFICATE----- ...)")
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError("holds a PEM block that is not a readable certificate") from None
    return data + b"\n"


def _pem_key(raw: str) -> bytes:
    data = raw.strip().encode()
    if not (data.startswith(b"-----BEGIN") and b"PRIVATE KEY-----" in data):
        raise ValueError("is not a PEM private key (-----BEGIN PRIVATE KEY----- ...)")
    return data + b"\n"


def _tls_name(raw: str) -> str:
    s = raw.strip()
    if not s or any(c.isspace() for c in s):
        raise ValueError(f"{raw!r} must be a host name or address without spaces")
    return s


def _passphrase(raw: str) -> str:
    if not raw:
        raise ValueError("is empty; leave the item out to use the passphrase of <prefix>")
    return raw


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        s = raw.strip()
        # One sign at most: lstrip would let '--1' through to int(), and its message.
        if not (s.isascii() and s.removeprefix("-").isdigit()):
            raise ValueError(f"{raw!r} is not a whole number; give one within {lo}..{hi}")
        value = int(s)
        if not lo <= value <= hi:
            raise ValueError(f"{value} is not within {lo}..{hi}")
        return value

    return parse


def _size(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = parse_size(raw)
        if value < minimum:
            raise ValueError(f"{raw!r} must be at least {format_size(minimum)}")
        return value

    return parse


def _overcommit(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(
            f"{raw!r} is not a number; give vCPUs per host CPU within 1..{MAX_CPU_OVERCOMMIT:g}"
        ) from None
    if not (math.isfinite(value) and 1.0 <= value <= MAX_CPU_OVERCOMMIT):
        raise ValueError(f"{raw!r} is not within 1..{MAX_CPU_OVERCOMMIT:g}")
    return value


def parse_host_spec(
    name: str, items: Mapping[str, Any], index: int = 0
) -> HostSpec | tuple[str, ...]:
    """The host's spec, or every problem of its variable (each naming its item)."""
    problems: list[str] = []
    name_problem = ownership.host_name_problem(name)
    if name_problem is not None:
        problems.append(f"{name_problem}; rename the variable {hosts_prefix('<prefix>')}{name}")
    for key in sorted(set(items) - set(HOST_ITEM_NAMES)):
        problems.append(f"{key}: unknown item; allowed: {', '.join(HOST_ITEM_NAMES)}")

    def get(key: str, parse: Callable[[str], Any], default: Any) -> Any:
        raw = items.get(key)
        if raw is None:
            return default
        if not isinstance(raw, str):
            problems.append(f"{key}: {raw!r} is not a string (Nomad variable items are strings)")
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            return default

    address = get("address", _address, None)
    if "address" not in items:
        problems.append(
            "address: required: the daemon's gRPC address, host:port (such as "
            "192.168.1.10:50051) or unix:/path"
        )
    skip = get("insecure_skip_verify", parse_bool, False)
    server_cert = get("server_cert", _pem_certificate, None)
    if "server_cert" not in items and not skip:
        problems.append(
            "server_cert: required unless insecure_skip_verify=true: the daemon's root CA "
            "(multipass_root_cert.pem on that host) to pin"
        )
    client_cert = get("client_cert", _pem_certificate, None)
    client_key = get("client_key", _pem_key, None)
    if ("client_cert" in items) != ("client_key" in items):
        given, missing = "client_cert", "client_key"
        if "client_key" in items:
            given, missing = missing, given
        problems.append(
            f"{missing}: required with {given}: give this host's certificate and its key "
            "together, or neither (the shared ones of <prefix> then apply)"
        )
    spec = HostSpec(
        name=name,
        address=address or "",
        index=index,
        server_cert=server_cert,
        server_name=get("server_name", _tls_name, None),
        client_cert=client_cert,
        client_key=client_key,
        passphrase=get("passphrase", _passphrase, None),
        insecure_skip_verify=skip,
        cpus=get("cpus", _int_in(1, MAX_HOST_CPUS), None),
        memory=get("memory", _size(1), None),
        disk=get("disk", _size(1), None),
        reserve_memory=get("reserve_memory", _size(0), DEFAULT_RESERVE_MEMORY),
        reserve_disk=get("reserve_disk", _size(0), DEFAULT_RESERVE_DISK),
        cpu_overcommit=get("cpu_overcommit", _overcommit, DEFAULT_CPU_OVERCOMMIT),
        max_parallel_launches=get(
            "max_parallel_launches",
            _int_in(1, MAX_PARALLEL_LAUNCHES),
            DEFAULT_MAX_PARALLEL_LAUNCHES,
        ),
        cordoned=get("cordoned", parse_bool, False),
        evacuate=get("evacuate", parse_bool, False),
    )
    return tuple(problems) if problems else spec


# ------------------------------------------------------------ reading


@dataclass(frozen=True)
class HostVariable:
    host: str
    path: str
    items: Mapping[str, str] = field(repr=False)
    index: int  # ModifyIndex


class HostSource:
    """Reads host variables and waits for them to change, as PoolSource does for pools.

    One list of ``<prefix>/hosts/`` per ``load``; a variable is read again only when
    its ModifyIndex moved.
    """

    def __init__(self, nomad: NomadClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.nomad = nomad
        self.prefix = prefix
        self.reads = 0  # Nomad reads made (lists and variables), for Observer.reads
        self._watch = VariableWatch(nomad, hosts_prefix(prefix))
        self._read: dict[str, HostVariable] = {}  # path -> the variable as last read

    def path(self, host: str) -> str:
        return host_path(self.prefix, host)

    async def load(self, shared: PrefixListing | None = None) -> list[HostVariable]:
        """Every host's variable, sorted by host name; empty when there is none.

        ``shared``: the pass's list of ``<prefix>``, which holds ``<prefix>/hosts/``.
        """
        here = hosts_prefix(self.prefix)
        if shared is None:
            listing = await self.nomad.list_vars(here)
            self.reads += 1
        else:
            listing = await shared.read(here)
        # The watch starts from what this read saw: its first wake is a real change,
        # even when it starts after this load (app.connect refreshes the fleet first).
        self._watch.saw(listing, start=True)
        listed = {m.path: m.modify_index for m in listing.value if "/" not in m.path[len(here) :]}
        changed = [p for p, i in listed.items() if p not in self._read or self._read[p].index != i]
        # A variable deleted between the list and its read is simply gone next time.
        read = await asyncio.gather(
            *(self.nomad.get_var(p) for p in changed), return_exceptions=True
        )
        self.reads += len(changed)
        for path, v in zip(changed, read, strict=True):
            if isinstance(v, NotFound):
                self._read.pop(path, None)
                continue
            if isinstance(v, BaseException):
                raise v
            self._read[path] = HostVariable(path[len(here) :], path, dict(v.items), v.modify_index)
        self._read = {p: v for p, v in self._read.items() if p in listed}
        return [self._read[p] for p in sorted(self._read)]

    async def wait_for_change(self) -> None:
        """Return once a host variable was created, changed or deleted (a blocking query)."""
        await self._watch.wait_for_change()
