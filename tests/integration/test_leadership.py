"""Leader election against the Nomad simulator's variable locks, on a hand-moved clock."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from reconciler.clock import ManualClock
from reconciler.leadership import LeaderElector
from reconciler.nomad.client import NomadClient
from reconciler.nomad.settings import NomadSettings
from reconciler.sim.faults import Fault
from reconciler.sim.world import SimConfig, Simulation

PATH = "nomad/jobs/multipass-reconciler/leader"
TTL, DELAY = 15.0, 15.0


class Replica:
    def __init__(self, name: str, nomad: NomadClient, clock: ManualClock) -> None:
        self.elector = LeaderElector(nomad, PATH, clock, ttl=TTL, lock_delay=DELAY, identity=name)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self, *, release: bool = True) -> None:
        self.task = asyncio.create_task(self.elector.run(self.stop, release=release))

    async def halt(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task


@contextlib.asynccontextmanager
async def two_replicas() -> AsyncIterator[tuple[Simulation, Replica, Replica]]:
    clock = ManualClock()
    async with Simulation(SimConfig(seed=1), clock) as sim:
        settings = NomadSettings(address=sim.nomad.address, timeout=2.0)
        async with NomadClient(settings) as a_client, NomadClient(settings) as b_client:
            a, b = Replica("a", a_client, clock), Replica("b", b_client, clock)
            yield sim, a, b
            for r in (a, b):
                if r.task is not None and not r.task.done():
                    r.stop.set()
            for r in (a, b):
                if r.task is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(r.task, 5)


async def run_for(
    sim: Simulation, a: Replica, b: Replica, seconds: float
) -> list[tuple[bool, bool]]:
    """Advance simulated time a second at a time; who leads at every instant."""
    seen = []
    for _ in range(int(seconds)):
        sim.advance(1.0, step=1.0)
        await asyncio.sleep(0.01)  # let the replicas' requests go out and come back
        leaders = (a.elector.is_leader(), b.elector.is_leader())
        assert leaders != (True, True), "two leaders at once"
        seen.append(leaders)
    return seen


async def test_exactly_one_of_two_replicas_leads_and_keeps_leading() -> None:
    async with two_replicas() as (sim, a, b):
        a.start()
        await run_for(sim, a, b, 2)
        b.start()
        seen = await run_for(sim, a, b, 60)  # four TTLs: renewals keep it
        assert all(s == (True, False) for s in seen)
        holder = await a.elector.nomad.get_var(PATH)
        assert holder.items["holder"] == "a"


async def test_a_lease_means_the_same_when_the_simulated_cluster_runs_faster() -> None:
    """`reconciler sim --speed 10` with `reconciler run`: Nomad's lock TTL is real time.

    The cluster's clock runs ten times the reconciler's; the lock's TTL runs on
    the reconciler's (real) time, so renewals every TTL/3 keep the lock.
    """
    world, real = ManualClock(), ManualClock()
    sim = Simulation(SimConfig(seed=1), world, lock_clock=real)
    async with sim, NomadClient(NomadSettings(address=sim.nomad.address, timeout=2.0)) as nomad:
        a = Replica("a", nomad, real)
        changes: list[bool] = []
        a.elector.on_change = changes.append
        a.start()
        for _ in range(60):  # four TTLs of real time, forty of the cluster's
            sim.advance(10.0, step=10.0)
            real.advance(1.0)
            await asyncio.sleep(0.01)
            a.elector.is_leader()
        assert changes == [True], "leadership was lost and taken again"
        lock = sim.nomad_state.variables[("default", PATH)].lock
        assert lock is not None and not lock.lapsed
        await a.halt()
        # And the lock lapses by that time only: 2 x TTL, then the lock-delay.
        b = Replica("b", nomad, real)
        a2 = Replica("a", nomad, real)
        a2.start(release=False)
        for _ in range(3):
            real.advance(1.0)
            await asyncio.sleep(0.01)
        assert a2.elector.is_leader()
        await a2.halt()
        sim.advance(1000.0, step=100.0)  # the cluster's time: the lock does not lapse
        lock = sim.nomad_state.variables[("default", PATH)].lock
        assert lock is not None and not lock.lapsed
        b.start()
        for _ in range(int(2 * TTL + DELAY) + 8):
            real.advance(1.0)
            await asyncio.sleep(0.01)
        assert b.elector.is_leader()
        await b.halt()


async def test_a_crashed_leader_is_replaced_within_ttl_plus_lock_delay() -> None:
    async with two_replicas() as (sim, a, b):
        a.start(release=False)  # a will die without releasing, as a crash does
        await run_for(sim, a, b, 2)
        b.start()
        await run_for(sim, a, b, 5)
        await a.halt()  # the lock must lapse, then wait out its delay
        seen = await run_for(sim, a, b, 2 * TTL + DELAY + b.elector.retry + 2)
        assert seen[-1] == (False, True)
        takeover = next(i for i, s in enumerate(seen) if s[1])
        assert takeover >= DELAY  # never before the dead leader's lease and the delay


async def test_a_released_lock_is_taken_over_at_once() -> None:
    async with two_replicas() as (sim, a, b):
        a.start()
        await run_for(sim, a, b, 2)
        b.start()
        await run_for(sim, a, b, 3)
        await a.halt()  # graceful: releases the lock
        seen = await run_for(sim, a, b, b.elector.retry + 2)
        assert seen[-1] == (False, True)


async def test_a_leader_cut_off_from_nomad_stops_before_its_ttl() -> None:
    async with two_replicas() as (sim, a, b):
        a.start()
        await run_for(sim, a, b, 2)
        b.start()
        assert (await run_for(sim, a, b, 3))[-1] == (True, False)
        sim.faults.set("PUT /v1/var/*", Fault(hang=True))  # renewals never answer
        seen = await run_for(sim, a, b, TTL)
        # The lease (TTL - TTL/3 after the last good renewal) ran out within one TTL,
        # long before Nomad would let the lock go (2 x TTL, then the lock delay).
        assert seen[-1] == (False, False)
        # And a shutdown does not wait on the hung renewal (nor on a release that hangs).
        started = time.monotonic()
        await asyncio.wait_for(a.halt(), timeout=10)
        assert time.monotonic() - started < 7
        sim.faults.clear()
