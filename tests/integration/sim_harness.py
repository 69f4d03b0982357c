"""Drive the real controller against the simulators on a hand-moved clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from reconciler.app import Connected, connect
from reconciler.clock import ManualClock
from reconciler.controller import PassReport
from reconciler.execute import ExecutorLimits
from reconciler.nomad.settings import NomadSettings
from reconciler.pools import DEFAULT_PREFIX, pool_path
from reconciler.settings import Settings
from reconciler.sim.world import SimConfig, Simulation

SERVERS = "servers: [10.0.0.2]"


@dataclass
class Harness:
    sim: Simulation
    c: Connected

    async def put_pool(self, pool: str, items: Mapping[str, str]) -> None:
        full = {"cloud_init_vars": SERVERS, **items}
        await self.c.nomad.put_var(pool_path(DEFAULT_PREFIX, pool), full)

    async def step(self, seconds: float = 5.0) -> PassReport:
        """One level-triggered pass (actions in the background), then time passes."""
        report = await self.c.controller.reconcile_once(wait_actions=False)
        await asyncio.sleep(0.02)  # let started calls reach the servers
        self.sim.advance(seconds, step=seconds)
        await asyncio.sleep(0.02)  # let finished calls return
        return report

    async def converge(self, max_passes: int = 60, seconds: float = 5.0) -> PassReport:
        for _ in range(max_passes):
            report = await self.step(seconds)
            if report.converged and not self.c.controller.executor.inflight:
                return report
        raise AssertionError(f"did not converge in {max_passes} passes: {report}")

    def instances(self, pool: str = "web") -> list[str]:
        return sorted(n for n in self.sim.multipass_state.instances if n.startswith(pool + "-"))

    def ready_nodes(self, pool: str = "web") -> list[str]:
        return sorted(
            n.name
            for n in self.sim.nomad_state.nodes.values()
            if n.name.startswith(pool + "-") and n.status == "ready" and n.eligibility == "eligible"
        )


@contextlib.asynccontextmanager
async def harness(config: SimConfig | None = None) -> AsyncIterator[Harness]:
    clock = ManualClock()
    config = config or SimConfig(seed=5, boot_seconds=20, heartbeat_timeout=15, migrate_seconds=10)
    async with Simulation(config, clock) as sim:
        settings = Settings(
            prefix=DEFAULT_PREFIX,
            nomad=NomadSettings(address=sim.nomad.address),
            env=sim.environment(),
        )
        limits = ExecutorLimits(call_timeout=5.0, attempts=2, backoff_max=0.05)
        async with connect(settings, clock=clock, limits=limits) as c:
            yield Harness(sim, c)
            # Let background actions finish before the servers go away.
            for _ in range(50):
                if not c.controller.executor.inflight:
                    break
                sim.advance(5)
                await asyncio.sleep(0.02)
