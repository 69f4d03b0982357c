"""Both simulators and the world between them.

A booted VM becomes a Nomad node only as its cloud-init says (sim/cloudinit.py):
node name, class, datacenter, pool and meta come from the Nomad configuration
the user-data writes, and a user-data that writes none never joins. A deleted
or stopped VM stops heartbeating and its node goes down after Nomad's heartbeat
timeout. Everything runs on one clock: a ManualClock in tests (``advance``), a
ScaledClock when run for people (``run_ticker``).

Hosts: ``SimConfig.hosts`` simulated multipassd daemons feed the one simulated Nomad.
With one (the default) it is today's single daemon, host ``default``, and nothing is
written to Nomad. With more, they are ``host1`` .. ``hostN``, each with its own port,
root CA and leaf, capacity and instances; one client certificate and one passphrase
work on all of them, and the simulation writes the fleet's variables (``<prefix>``
with the shared client credentials, ``<prefix>/hosts/<host>`` per host). A host's
daemon can stop answering while its VMs run on (``host_daemon_down``), or the whole
host can lose power (``host_power_off``) and come back (``host_power_on``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.clock import Clock, ManualClock, TimeMap, same_time
from reconciler.model import InstanceState
from reconciler.multipass.settings import server_name_from
from reconciler.pools import DEFAULT_PREFIX
from reconciler.sim.certs import SimCertificates, generate, generate_client
from reconciler.sim.cloudinit import CloudInitRejected, interpret
from reconciler.sim.control import HOST_ACTIONS
from reconciler.sim.faults import Fault, FaultInjector
from reconciler.sim.multipass_state import Event, HostCapacity, MultipassState, SimInstance
from reconciler.sim.multipassd_server import MultipassdSimServer
from reconciler.sim.nomad_server import NomadSimServer
from reconciler.sim.nomad_state import NomadState, SimError

log = logging.getLogger(__name__)
MiB = 1024**2
# The implicit host of a single-daemon world (FLEET.md).
DEFAULT_HOST = "default"
# A VM on a host whose power goes: its guest is running (or booting) and comes back.
_LIVE = (InstanceState.STARTING, InstanceState.RUNNING, InstanceState.UNKNOWN)


@dataclass
class SimConfig:
    seed: int = 0
    boot_seconds: float = 40.0
    heartbeat_timeout: float = 30.0
    node_init_seconds: float = 5.0
    migrate_seconds: float = 15.0
    passphrase: str = "simulator-passphrase"
    acl: bool = False
    capacity: HostCapacity = field(default_factory=HostCapacity)
    nomad_port: int = 0
    multipass_port: int = 0
    never_join: float = 0.0  # fraction of booted VMs that never join Nomad
    launch_failure: float = 0.0  # fraction of launches that fail after preparing
    # Mean simulated seconds a launch prepares its image ("being prepared" meanwhile).
    prepare_seconds: float = 0.0
    cpu_mhz_per_core: int = 2000
    # Simulated multipassd daemons: 1 is today's single host ("default"), more are
    # host1..hostN, each with its own port (multipass_port + k - 1 when one is given),
    # certificates, and ``capacity``.
    hosts: int = 1
    prefix: str = DEFAULT_PREFIX  # where the fleet's variables go (hosts > 1 only)


class HostControlError(SimError):
    """An unknown host (404) or action (400): what `POST /v1/sim/hosts/...` answers."""


@dataclass
class SimHost:
    """One simulated Multipass host: its daemon, the daemon's world, its certificates."""

    name: str
    state: MultipassState
    server: MultipassdSimServer
    certs: SimCertificates
    powered: bool = True
    # Instances whose guest was up when the power went: their nodes come back with it.
    were_up: set[str] = field(default_factory=set)

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def daemon_up(self) -> bool:
        return self.server.answering


class Simulation:
    def __init__(
        self,
        config: SimConfig | None = None,
        clock: Clock | None = None,
        state_dir: Path | None = None,
        *,
        lock_clock: Clock | None = None,
        wire_time: TimeMap = same_time,
    ) -> None:
        """``lock_clock``: what Nomad's lock TTLs run on (default ``clock``; see nomad_state).

        ``wire_time``: the one mapping from ``clock``'s time to the times both servers put
        on the wire (StatusUpdatedAt, drain times, creation_timestamp, ...). The same time
        by default, for a reconciler on ``clock`` too; ``ScaledClock.wall_time`` for one
        outside on wall time, which compares those moments with its own clock.
        """
        self.config = config or SimConfig()
        self.clock: Clock = clock or ManualClock()
        self.wire_time = wire_time
        self.rng = random.Random(self.config.seed)
        self.faults = FaultInjector(seed=self.config.seed)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="reconciler-sim-")
            state_dir = Path(self._tmp.name)
        self.state_dir = state_dir
        self.nomad_state = self._nomad_state(lock_clock)
        self.hosts: dict[str, SimHost] = {}
        count = self.config.hosts
        if count < 1:
            raise ValueError(f"hosts: {count} must be at least 1")
        if count == 1:
            # Issued for the host of the address the simulated daemon listens on, as the
            # daemon's own leaf is (see certs.py).
            certs = generate(state_dir / "certs", server_name="127.0.0.1")
            self._add_host(
                DEFAULT_HOST, certs, capacity=self.config.capacity, port=self.config.multipass_port
            )
        else:
            # One client certificate, as one multipass CLI has; every daemon its own CA.
            client = (
                state_dir / "certs" / "client" / "multipass_cert.pem",
                state_dir / "certs" / "client" / "multipass_cert_key.pem",
            )
            generate_client(*client)
            for k in range(1, count + 1):
                certs = generate(
                    state_dir / "certs" / f"host{k}", server_name="127.0.0.1", client=client
                )
                port = self.config.multipass_port + k - 1 if self.config.multipass_port else 0
                capacity = dataclasses.replace(self.config.capacity)  # each host its own
                self._add_host(f"host{k}", certs, capacity=capacity, port=port)
        first = next(iter(self.hosts.values()))
        # The first host under the names a single-host simulation always had.
        self.certs: SimCertificates = first.certs
        self.multipass_state = first.state
        self.multipassd = first.server
        self.nomad = NomadSimServer(
            self.nomad_state,
            faults=self.faults,
            port=self.config.nomad_port,
            wire_time=self.wire_time,
        )
        self.nomad.host_control = self.host_action
        self.nomad.host_listing = self.host_listing
        self.join_failure = Fault(error_rate=self.config.never_join)
        self.rejected: dict[str, str] = {}  # instance -> why it never joined
        self._node_names: dict[str, str] = {}  # instance -> the node its cloud-init registered
        self._ticker: asyncio.Task[None] | None = None

    def _nomad_state(self, lock_clock: Clock | None) -> NomadState:
        return NomadState(
            self.clock,
            random.Random(self.rng.getrandbits(32)),
            heartbeat_timeout=self.config.heartbeat_timeout,
            init_seconds=self.config.node_init_seconds,
            migrate_seconds=self.config.migrate_seconds,
            acl=self.config.acl,
            lock_clock=lock_clock,
        )

    def _add_host(
        self, name: str, certs: SimCertificates, *, capacity: HostCapacity, port: int = 0
    ) -> None:
        state = MultipassState(
            self.clock,
            random.Random(self.rng.getrandbits(32)),
            boot_seconds=self.config.boot_seconds,
            prepare_seconds=self.config.prepare_seconds,
            capacity=capacity,
        )
        server = MultipassdSimServer(
            state,
            certs,
            passphrase=self.config.passphrase,
            faults=self.faults,
            port=port,
            wire_time=self.wire_time,
        )
        server.launch_failure = Fault(error_rate=self.config.launch_failure)
        self.hosts[name] = SimHost(name, state, server, certs)

    async def start(self) -> None:
        await self.nomad.start()
        for host in self.hosts.values():
            await host.server.start()
        if len(self.hosts) > 1:
            self._write_fleet_variables()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for host in self.hosts.values():
            await host.server.stop()
        await self.nomad.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def __aenter__(self) -> Simulation:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ time

    def tick(self) -> None:
        """Bring both worlds to the clock's now and carry events between them.

        A host without power stands still: its VMs neither boot nor report.
        """
        for host in self.hosts.values():
            if host.powered:
                for event in host.server.tick():
                    self._on_vm_event(event)
        self.nomad_state.tick()

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """ManualClock only: let ``seconds`` of cluster life pass, in steps."""
        assert isinstance(self.clock, ManualClock), "advance() needs a ManualClock"
        remaining = seconds
        while remaining > 0:
            dt = min(step, remaining)
            self.clock.advance(dt)
            self.tick()
            remaining -= dt

    def run_ticker(self, interval: float = 0.1) -> None:
        """Tick on the event loop every ``interval`` real seconds (for a non-manual clock)."""

        async def loop() -> None:
            while True:
                self.tick()
                await asyncio.sleep(interval)

        self._ticker = asyncio.get_running_loop().create_task(loop())

    # ------------------------------------------------------------ the VM <-> node bridge

    def _on_vm_event(self, event: Event) -> None:
        if event.kind == "running" and event.instance is not None:
            inst = event.instance
            if self.faults.should_fail(self.join_failure):
                self.rejected[inst.name] = "fault injection: never joins"
                return
            try:
                reg = interpret(inst.user_data, hostname=inst.name)
            except CloudInitRejected as exc:
                self.rejected[inst.name] = str(exc)
                log.info("simulated VM %s does not join Nomad: %s", inst.name, exc)
                return
            self._node_names[inst.name] = reg.name
            self.nomad_state.register_node(
                reg.name,
                datacenter=reg.datacenter,
                node_class=reg.node_class,
                node_pool=reg.node_pool,
                meta=reg.meta,
                cpu_mhz=inst.cpus * self.config.cpu_mhz_per_core,
                memory_mb=inst.memory // MiB,
            )
        elif event.kind in ("gone", "stopped"):
            self.nomad_state.node_lost(event.name)

    # ------------------------------------------------------------ breaking and mending hosts

    def host(self, name: str) -> SimHost:
        host = self.hosts.get(name)
        if host is None:
            raise HostControlError(
                404, f"no simulated host {name!r}; hosts: {', '.join(self.hosts)}"
            )
        return host

    async def host_action(self, name: str, action: str) -> SimHost:
        """One of HOST_ACTIONS on the named host (what `reconciler sim ctl host` asks for)."""
        if action not in HOST_ACTIONS:
            raise HostControlError(
                400, f"unknown host action {action!r}; allowed: {', '.join(HOST_ACTIONS)}"
            )
        host = self.host(name)
        do = {
            "daemon-down": self.host_daemon_down,
            "daemon-up": self.host_daemon_up,
            "power-off": self.host_power_off,
            "power-on": self.host_power_on,
        }[action]
        await do(name)
        return host

    async def host_daemon_down(self, name: str) -> None:
        """multipassd stops: its port refuses connections; its VMs run on, their nodes too."""
        await self.host(name).server.go_down()

    async def host_daemon_up(self, name: str) -> None:
        """multipassd answers again, with the same instances (a powered-off host stays off)."""
        host = self.host(name)
        if host.powered:
            await host.server.go_up()

    async def host_power_off(self, name: str) -> None:
        """The host loses power: its daemon stops and its VMs with it.

        Their nodes stop heartbeating and go down once Nomad's heartbeat timeout passes,
        as a stopped VM's do. The instances are kept as they were, to come back with
        ``host_power_on``.
        """
        host = self.host(name)
        if not host.powered:
            return
        for event in host.server.tick():  # what happened before the power went
            self._on_vm_event(event)
        await host.server.go_down()
        host.powered = False
        host.were_up = {i.name for i in host.state.instances.values() if self._joined(i)}
        for inst in host.state.instances.values():
            if inst.state in _LIVE:
                self.nomad_state.node_lost(self._node_names.get(inst.name, inst.name))

    async def host_power_on(self, name: str) -> None:
        """Power is back: the daemon answers and the VMs run again as they were.

        A VM whose guest was up is RUNNING again at once and its node heartbeats again
        (ready as Nomad says: at once if it never went down, after its init otherwise);
        one that was still booting boots from the start.
        """
        host = self.host(name)
        if host.powered:
            return
        host.powered = True
        now = self.clock.now()
        for inst in host.state.instances.values():
            if inst.name in host.were_up and self._joined(inst):
                self.nomad_state.node_recovered(self._node_names.get(inst.name, inst.name))
            elif inst.state in _LIVE and not inst.guest_up:
                inst.ready_at = now + self.config.boot_seconds
        host.were_up = set()
        await host.server.go_up()

    def _joined(self, inst: SimInstance) -> bool:
        return inst.state in _LIVE and inst.guest_up and inst.name not in self.rejected

    def host_listing(self) -> list[dict[str, str]]:
        """Each host as `GET /v1/sim/hosts` shows it."""
        return [
            {
                "Name": h.name,
                "Address": h.address,
                "Daemon": "up" if h.daemon_up else "down",
                "Power": "on" if h.powered else "off",
            }
            for h in self.hosts.values()
        ]

    # ------------------------------------------------------------ the fleet's variables

    def host_variables(self) -> dict[str, dict[str, str]]:
        """``<prefix>/hosts/<host>`` -> items, as a fleet of several hosts writes them."""
        out: dict[str, dict[str, str]] = {}
        prefix = self.config.prefix.rstrip("/")
        for host in self.hosts.values():
            items = {
                "address": host.address,
                "server_cert": host.certs.root_cert.read_text(),
            }
            if server_name_from(host.address) != host.certs.server_name:
                items["server_name"] = host.certs.server_name
            out[f"{prefix}/hosts/{host.name}"] = items
        return out

    def _write_fleet_variables(self) -> None:
        """The shared client credentials in ``<prefix>``, and one variable per host."""
        prefix = self.config.prefix.rstrip("/")
        shared = {
            "client_cert": self.certs.client_cert.read_text(),
            "client_key": self.certs.client_key.read_text(),
            "passphrase": self.config.passphrase,
        }
        self.nomad_state.put_var("default", prefix, shared)
        for path, items in self.host_variables().items():
            self.nomad_state.put_var("default", path, items)

    # ------------------------------------------------------------ what a shell needs

    def environment(self) -> dict[str, str]:
        return {
            "NOMAD_ADDR": self.nomad.address,
            "MULTIPASS_SERVER_ADDRESS": self.multipassd.address,
            "MULTIPASS_CLIENT_CERT": str(self.certs.client_cert),
            "MULTIPASS_CLIENT_KEY": str(self.certs.client_key),
            "MULTIPASS_SERVER_CERT": str(self.certs.root_cert),
            "MULTIPASS_PASSPHRASE": self.config.passphrase,
        }
