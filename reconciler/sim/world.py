"""Both simulators and the world between them.

A booted VM becomes a Nomad node only as its cloud-init says (sim/cloudinit.py):
node name, class, datacenter, pool and meta come from the Nomad configuration
the user-data writes, and a user-data that writes none never joins. A deleted
or stopped VM stops heartbeating and its node goes down after Nomad's heartbeat
timeout. Everything runs on one clock: a ManualClock in tests (``advance``), a
ScaledClock when run for people (``run_ticker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.clock import Clock, ManualClock
from reconciler.sim.certs import SimCertificates, generate
from reconciler.sim.cloudinit import CloudInitRejected, interpret
from reconciler.sim.faults import Fault, FaultInjector
from reconciler.sim.multipass_state import Event, HostCapacity, MultipassState
from reconciler.sim.multipassd_server import MultipassdSimServer
from reconciler.sim.nomad_server import NomadSimServer
from reconciler.sim.nomad_state import NomadState

log = logging.getLogger(__name__)
MiB = 1024**2


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


class Simulation:
    def __init__(
        self,
        config: SimConfig | None = None,
        clock: Clock | None = None,
        state_dir: Path | None = None,
        *,
        lock_clock: Clock | None = None,
    ) -> None:
        """``lock_clock``: what Nomad's lock TTLs run on (default ``clock``; see nomad_state)."""
        self.config = config or SimConfig()
        self.clock: Clock = clock or ManualClock()
        self.rng = random.Random(self.config.seed)
        self.faults = FaultInjector(seed=self.config.seed)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="reconciler-sim-")
            state_dir = Path(self._tmp.name)
        self.state_dir = state_dir
        # Issued for the host of the address the simulated daemon listens on, as the
        # daemon's own leaf is (see certs.py).
        self.certs: SimCertificates = generate(state_dir / "certs", server_name="127.0.0.1")
        self.nomad_state = NomadState(
            self.clock,
            random.Random(self.rng.getrandbits(32)),
            heartbeat_timeout=self.config.heartbeat_timeout,
            init_seconds=self.config.node_init_seconds,
            migrate_seconds=self.config.migrate_seconds,
            acl=self.config.acl,
            lock_clock=lock_clock,
        )
        self.multipass_state = MultipassState(
            self.clock,
            random.Random(self.rng.getrandbits(32)),
            boot_seconds=self.config.boot_seconds,
            prepare_seconds=self.config.prepare_seconds,
            capacity=self.config.capacity,
        )
        self.nomad = NomadSimServer(
            self.nomad_state, faults=self.faults, port=self.config.nomad_port
        )
        self.multipassd = MultipassdSimServer(
            self.multipass_state,
            self.certs,
            passphrase=self.config.passphrase,
            faults=self.faults,
            port=self.config.multipass_port,
        )
        self.multipassd.launch_failure = Fault(error_rate=self.config.launch_failure)
        self.join_failure = Fault(error_rate=self.config.never_join)
        self.rejected: dict[str, str] = {}  # instance -> why it never joined
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.nomad.start()
        await self.multipassd.start()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.multipassd.stop()
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
        """Bring both worlds to the clock's now and carry events between them."""
        for event in self.multipassd.tick():
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
