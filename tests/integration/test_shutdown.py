"""Stopping and stepping down, with the real controller, executor and elector on the simulators.

What must hold (docs/operations.md, "Shutdown and leadership"):

* on stop, no new call goes out; calls already sent get ``shutdown_grace``
  seconds; the lock is held (and renewed) until then, and released after;
* when the lease is lost, the actions under way are cancelled and nothing new
  is sent;
* a pool in backoff is looked at again when its backoff ends, without waiting
  for the resync.

Counts are of the calls that reached the simulated multipassd.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from reconciler.app import lead
from reconciler.clock import ManualClock
from reconciler.controller import Controller
from reconciler.execute import Executor, ExecutorLimits
from reconciler.leadership import LeaderElector
from reconciler.pools import DEFAULT_PREFIX, leader_path
from reconciler.render import render_cloud_init
from reconciler.sim.faults import Fault
from tests.integration.sim_harness import Harness, harness

LOCK = leader_path(DEFAULT_PREFIX)
# Real seconds per simulated second: room for requests to go out and come back on a
# loaded machine. The TTL leaves a renewal many of them (its budget is in simulated time).
REAL_STEP = 0.05
TTL = 30.0


@contextlib.asynccontextmanager
async def one_launch_at_a_time() -> AsyncIterator[Harness]:
    """The harness, with a single launch slot (so launches queue) and no resync."""
    async with harness() as h:
        c = h.c
        c.controller.executor = Executor(
            c.multipass,
            c.nomad,
            render_cloud_init,
            ExecutorLimits(launch_concurrency=1, call_timeout=5.0, attempts=2, backoff_max=0.05),
        )
        c.controller.resync = 10**9  # only watches, actions and backoffs wake the loop
        yield h


def launches(h: Harness) -> int:
    return h.sim.multipassd.calls.get("launch", 0)


def lock_held(h: Harness) -> bool:
    var = h.sim.nomad_state.variables.get(("default", LOCK))
    return var is not None and var.lock is not None


async def tick(h: Harness, seconds: float = 1.0) -> None:
    h.sim.advance(seconds, step=seconds)
    await asyncio.sleep(REAL_STEP)


async def until(h: Harness, what: str, check: Callable[[], bool], seconds: int = 60) -> None:
    """Let simulated time pass a second at a time until ``check()``."""
    for _ in range(seconds):
        if check():
            return
        await tick(h)
    raise AssertionError(f"{what}: not within {seconds} simulated seconds")


def elector_for(h: Harness, controller: Controller) -> LeaderElector:
    clock = h.sim.clock
    assert isinstance(clock, ManualClock)
    return LeaderElector(
        h.c.nomad, LOCK, clock, ttl=TTL, lock_delay=TTL, on_change=lambda _: controller.wake()
    )


async def test_stop_lets_the_sent_launch_finish_sends_no_other_and_then_releases_the_lock() -> None:
    async with one_launch_at_a_time() as h:
        controller = h.c.controller
        controller.shutdown_grace = 120.0  # longer than a launch takes here
        await h.put_pool("web", {"min": "3", "max": "3"})
        stop = asyncio.Event()
        running = asyncio.create_task(lead(controller, elector_for(h, controller), stop))
        await until(h, "the first launch", lambda: launches(h) == 1)
        assert len(controller.executor.inflight) == 3  # one sent, two queued for the slot

        stop.set()  # SIGTERM
        await asyncio.sleep(0.05)
        assert not running.done()  # the sent launch is still running...
        assert lock_held(h)  # ...so no standby may lead yet
        await until(h, "the shutdown", running.done)
        # Meanwhile the elector renewed (a launch outlasts the lease), nothing new was
        # sent, the launch finished, and only then was the lock released.
        assert launches(h) == 1
        assert len(h.instances()) == 1
        assert not lock_held(h)
        assert not controller.executor.inflight


async def test_calls_still_running_when_the_grace_ends_are_cancelled_and_the_lock_released() -> (
    None
):
    async with one_launch_at_a_time() as h:
        controller = h.c.controller
        controller.shutdown_grace = 5.0  # a launch here takes over 20 s
        await h.put_pool("web", {"min": "1", "max": "1"})
        stop = asyncio.Event()
        running = asyncio.create_task(lead(controller, elector_for(h, controller), stop))
        await until(h, "the launch", lambda: launches(h) == 1)

        stop.set()
        for _ in range(4):  # within the grace: still waiting, still leading
            await tick(h)
            assert not running.done() and lock_held(h)
        # Past the grace (a launch would take 20 s more): cancelled, and the lock released.
        await until(h, "the shutdown", running.done, seconds=10)
        assert not lock_held(h)
        assert not controller.executor.inflight


async def test_a_lost_lease_cancels_the_actions_under_way_and_sends_nothing_more() -> None:
    async with one_launch_at_a_time() as h:
        controller = h.c.controller
        leading = True
        controller.fence = lambda: leading
        await h.put_pool("web", {"min": "3", "max": "3"})
        stop = asyncio.Event()
        running = asyncio.create_task(controller.run(stop))
        await until(h, "the first launch", lambda: launches(h) == 1)

        leading = False  # the lease ends (the elector's on_change wakes the loop)
        controller.wake()
        await until(
            h, "the actions to be cancelled", lambda: not controller.executor.inflight, seconds=10
        )
        for _ in range(60):  # a minute on: the queued launches were never sent
            await tick(h)
        assert launches(h) == 1
        stop.set()
        await until(h, "the shutdown", running.done)


async def test_a_pool_is_looked_at_again_when_its_backoff_ends_not_at_the_resync() -> None:
    async with one_launch_at_a_time() as h:
        controller = h.c.controller
        passed_over: list[bool] = []  # per pass: was web left alone for its backoff?
        controller.on_pass = lambda report: passed_over.append("web" in controller._deferred)
        h.sim.multipassd.launch_failure = Fault(error_rate=1.0)
        await h.put_pool("web", {"min": "1", "max": "1"})
        stop = asyncio.Event()
        running = asyncio.create_task(controller.run(stop))
        await until(h, "a failed launch", lambda: bool(controller._backoff.get("web")))
        h.sim.multipassd.launch_failure = Fault()
        await real_time_until("a pass that left web alone", lambda: any(passed_over))
        sent = launches(h)
        # The loop is parked now, and nothing else wakes it (no resync, no spec or node
        # change): the end of the backoff (backoff_base = 2 s after the failure) must.
        # Simulated time stops past it; real time is given only for the pass to run.
        await tick(h, 3.0)
        await real_time_until("a launch after the backoff", lambda: launches(h) > sent)
        stop.set()
        await until(h, "the shutdown", running.done)


async def real_time_until(what: str, check: Callable[[], bool]) -> None:
    """Poll ``check()`` with simulated time standing still (10 s of real time at most)."""
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(REAL_STEP)
    raise AssertionError(f"{what}: not with simulated time standing still")
