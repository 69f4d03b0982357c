"""Leader election (reconciler.leadership) against the Nomad simulator, one network per replica.

tests/integration/test_leadership.py covers the basic hand-overs with faults on
the server, which every replica shares. Here each replica reaches Nomad through
its own ``Link`` (an httpx transport the test can cut), so one replica can be
partitioned while the others are not, and every simulated second checks the
safety invariant against Nomad's own state:

    a replica whose ``is_leader()`` is true holds the lock Nomad has on the
    variable right now (so at most one replica leads, and never one Nomad
    would let another replace).

Nomad's lock semantics (https://developer.hashicorp.com/nomad/api-docs/variables/locks,
nomad/locks.go): a lock not renewed for 2 x TTL lapses; it then stays on the
variable for LockDelay; a renew after the lapse is refused (409); a release
removes the lock at once, with no delay, even while it is lapsed; and when the
delay ends Nomad strips whatever lock the variable holds by then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from reconciler.clock import ManualClock
from reconciler.leadership import LeaderElector
from reconciler.nomad.client import NomadClient
from reconciler.nomad.settings import NomadSettings
from reconciler.pools import DEFAULT_PREFIX
from reconciler.sim.faults import FaultInjector
from reconciler.sim.nomad_server import NomadSimServer
from reconciler.sim.nomad_state import NomadState

PATH = f"{DEFAULT_PREFIX}/leader"
TTL, DELAY = 15.0, 15.0
REAL_STEP = 0.01  # real seconds per simulated second: lets requests go out and come back


class Link(httpx.AsyncBaseTransport):
    """One replica's network to Nomad.

    ``refuse()``: requests fail at once, as with no route to the host.
    ``hang(n)``: the next ``n`` requests (all of them when ``n`` is None) get no
    answer until ``heal()``, and are then lost (a read timeout): they never reach
    Nomad. ``heal()`` restores the link.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._refusing = False
        self._hang_left: int | None = 0
        self._healed = asyncio.Event()

    def refuse(self) -> None:
        self._refusing = True

    def hang(self, n: int | None = None) -> None:
        self._hang_left = n
        self._healed.clear()

    def heal(self) -> None:
        self._refusing = False
        self._hang_left = 0
        self._healed.set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._refusing:
            raise httpx.ConnectError("partitioned", request=request)
        if self._hang_left is None or self._hang_left > 0:
            if self._hang_left is not None:
                self._hang_left -= 1
            await self._healed.wait()
            raise httpx.ReadTimeout("lost in the partition", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class Replica:
    def __init__(self, name: str, address: str, clock: ManualClock) -> None:
        self.name = name
        self.link = Link()
        settings = NomadSettings(address=address, timeout=2.0, attempts=2, backoff_max=0.05)
        self.nomad = NomadClient(settings, transport=self.link)
        self.elector = LeaderElector(
            self.nomad, PATH, clock, ttl=TTL, lock_delay=DELAY, identity=name
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self, *, release: bool = True) -> None:
        self.task = asyncio.create_task(self.elector.run(self.stop, release=release))

    async def halt(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


class Cluster:
    def __init__(self, state: NomadState, clock: ManualClock, replicas: list[Replica]) -> None:
        self.state = state
        self.clock = clock
        self.replicas = replicas

    def held_lock(self) -> str | None:
        var = self.state.variables.get(("default", PATH))
        return var.lock.id if var is not None and var.lock is not None else None

    def check(self) -> list[str]:
        """The safety invariant (see the module doc); returns who leads."""
        leaders = [r for r in self.replicas if r.elector.is_leader()]
        assert len(leaders) <= 1, f"two leaders at {self.clock.now()}: {leaders}"
        for r in leaders:
            # The elector keeps its lock ID private; the invariant is about exactly that.
            assert r.elector._lock_id == self.held_lock(), (
                f"{r.name} acts as leader but Nomad holds {self.held_lock()!r}, "
                f"not its lock {r.elector._lock_id!r}"
            )
        return [r.name for r in leaders]

    async def run_for(self, seconds: float) -> list[list[str]]:
        """Let simulated time pass a second at a time, checking the invariant at each."""
        seen = []
        for _ in range(int(seconds)):
            self.clock.advance(1.0)
            self.state.tick()
            await asyncio.sleep(REAL_STEP)
            seen.append(self.check())
        return seen


@contextlib.asynccontextmanager
async def cluster(*names: str) -> AsyncIterator[Cluster]:
    clock = ManualClock()
    state = NomadState(clock)
    server = NomadSimServer(state, faults=FaultInjector())
    await server.start()
    replicas = [Replica(n, server.address, clock) for n in names]
    try:
        yield Cluster(state, clock, replicas)
    finally:
        for r in replicas:
            r.link.heal()
            r.stop.set()
        for r in replicas:
            if r.task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(r.task, 10)
            await r.nomad.aclose()
        await server.stop()


async def test_the_holder_is_written_into_the_variable_for_operators() -> None:
    async with cluster("a", "b") as c:
        a, b = c.replicas
        a.start()
        await c.run_for(2)
        b.start()
        assert set(map(tuple, await c.run_for(20))) == {("a",)}
        var = c.state.variables[("default", PATH)]
        assert var.items == {"holder": "a"}


async def test_a_partitioned_leader_steps_down_before_its_ttl_and_the_other_takes_over() -> None:
    async with cluster("a", "b") as c:
        a, b = c.replicas
        a.start()
        await c.run_for(2)
        b.start()
        await c.run_for(10)
        cut_at = c.clock.now()
        a.link.refuse()  # only a is cut off; b still reaches Nomad
        seen = await c.run_for(2 * TTL + DELAY + b.elector.retry + 2)
        # a's last good renewal started at most renew_every before the cut, so its
        # lease ran out at least TTL / 3 before the TTL itself could have.
        a_last = max(i for i, s in enumerate(seen) if s == ["a"]) + 1
        assert a_last <= TTL - TTL / 3
        # b could only take over once Nomad let the lock lapse (2 x TTL) and its delay pass.
        b_first = next(i for i, s in enumerate(seen) if s == ["b"]) + 1
        assert b_first >= 2 * TTL - a.elector.renew_every + DELAY
        assert seen[-1] == ["b"]
        assert c.clock.now() - cut_at <= 2 * TTL + DELAY + b.elector.retry + 2
        # a, healed, finds its lock gone and stays a follower.
        a.link.heal()
        assert set(map(tuple, await c.run_for(2 * TTL))) == {("b",)}


async def test_a_graceful_handover_needs_no_lapse_nor_delay() -> None:
    async with cluster("a", "b") as c:
        a, b = c.replicas
        a.start()
        await c.run_for(2)
        b.start()
        await c.run_for(7)
        await a.halt()  # releases: no lock-delay follows a release
        assert c.held_lock() is None
        seen = await c.run_for(b.elector.retry + 1)
        assert seen[-1] == ["b"]


async def test_a_leader_that_lost_its_lease_does_not_release_into_a_successors_term() -> None:
    async with cluster("a", "b") as c:
        a, b = c.replicas
        a.start()
        await c.run_for(2)
        b.start()
        await c.run_for(3)
        a.link.hang()  # a's renewals get no answer
        await c.run_for(2 * TTL + 2)  # Nomad lets a's lock lapse: it is in its lock-delay now
        a.stop.set()  # a is shut down while the network is still out...
        await asyncio.sleep(REAL_STEP)
        a.link.heal()  # ...and the network comes back before a's shutdown finished
        await asyncio.wait_for(a.task or asyncio.sleep(0), 10)
        # Past the end of a's lock-delay and a whole term of b's: the invariant holds throughout.
        seen = await c.run_for(DELAY + 2 * TTL)
        assert seen[-1] == ["b"]


async def test_one_lost_renewal_does_not_cost_the_leadership() -> None:
    async with cluster("a") as c:
        (a,) = c.replicas
        a.start()
        await c.run_for(2)
        a.link.hang(1)  # the next request (a renewal) is lost; later ones get through
        seen = await c.run_for(2 * TTL)
        assert all(s == ["a"] for s in seen), seen


async def test_a_wall_clock_step_back_does_not_stretch_the_lease() -> None:
    async with cluster("a") as c:
        (a,) = c.replicas
        a.start()
        await c.run_for(2)
        assert c.check() == ["a"]
        a.link.hang()  # from now on no renewal reaches Nomad
        c.clock.step_wall(-3600)  # and NTP steps the wall clock an hour back
        seen = await c.run_for(TTL)
        # The lease is measured on the monotonic clock: it still ended within one TTL
        # of the last good renewal, as it would have without the step.
        assert seen[-1] == []
        assert not a.elector.is_leader()
