"""Autoscaling through random histories: the real controller, both simulators, a hand-moved clock.

Workloads come and go, specs' bounds change, time passes, the reconciler
crashes and restarts. After every step: the pool stays within max (+ surge),
each pass's desired count is within [min, max], and no scale-down decision
follows the previous decision sooner than the cooldown that decision set, restarts included.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from datetime import UTC, datetime

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from reconciler.controller import Controller, PassReport
from reconciler.execute import Executor, ExecutorLimits
from reconciler.observe import Observer
from reconciler.pools import DEFAULT_PREFIX, status_path
from reconciler.render import render_cloud_init
from reconciler.sim.world import SimConfig
from tests.integration.sim_harness import Harness, harness
from tests.property.budget import stateful_settings

COOLDOWN = 60.0
COOLDOWN_ON_SCALE_UP = 20.0
POLICY = f"""
cooldown: {COOLDOWN:.0f}s
cooldown_on_scale_up: {COOLDOWN_ON_SCALE_UP:.0f}s
checks:
  - {{name: mem, metric: percentage-allocated_memory, strategy: {{name: target-value, target: 60}}}}
  - {{name: unplaced, metric: blocked_evaluations}}
"""


class AutoscaleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.stack = contextlib.AsyncExitStack()
        self.h: Harness | None = None
        self.bounds = (0, 4)
        self.maxes: list[int] = [4]
        self.report: PassReport | None = None
        self.decisions: list[tuple[float, str]] = []  # (time, direction) as status recorded them

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @initialize(seed=st.integers(0, 1000), work=st.integers(0, 8))
    def start(self, seed: int, work: int) -> None:
        config = SimConfig(seed=seed, boot_seconds=20, heartbeat_timeout=15, migrate_seconds=10)
        self.h = self.run(self.stack.enter_async_context(harness(config)))
        self.bounds_edit(0, 4)
        self.workload(work)

    @rule(lo=st.integers(0, 2), extra=st.integers(1, 4))
    def bounds_edit(self, lo: int, extra: int) -> None:
        assert self.h is not None
        self.bounds = (lo, lo + extra)
        self.maxes = [*self.maxes[-1:], lo + extra]
        items = {"min": str(lo), "max": str(lo + extra), "policy": POLICY}
        self.run(self.h.put_pool("web", items))

    @rule(count=st.integers(0, 8))
    def workload(self, count: int) -> None:
        assert self.h is not None
        if count:
            self.h.sim.nomad_state.run_job("work", count=count, cpu_mhz=200, memory_mb=700)
        elif ("default", "work") in self.h.sim.nomad_state.jobs:
            self.h.sim.nomad_state.stop_job("work")

    @rule(seconds=st.sampled_from([5.0, 20.0]))
    def time_passes(self, seconds: float) -> None:
        assert self.h is not None
        self.report = self.run(self.h.step(seconds))
        self._record_decision()

    @rule()
    def crash_and_restart(self) -> None:
        assert self.h is not None
        old = self.h.c.controller
        for task in list(old._tasks):
            task.cancel()
        self.h.c.controller = Controller(
            old.pools,
            Observer(self.h.c.nomad, self.h.c.multipass, old.clock),
            Executor(
                self.h.c.multipass,
                self.h.c.nomad,
                render_cloud_init,
                ExecutorLimits(attempts=2, backoff_max=0.05),
            ),
            old.clock,
            status=old.status,
        )

    def _record_decision(self) -> None:
        assert self.h is not None
        try:
            var = self.run(self.h.c.nomad.get_var(status_path(DEFAULT_PREFIX, "web")))
        except Exception:
            return
        at = var.items.get("last_scale_at")
        if not at:
            return
        when = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        if not self.decisions or self.decisions[-1][0] != when:
            self.decisions.append((when, var.items["last_scale_direction"]))

    @invariant()
    def desired_within_bounds(self) -> None:
        if self.report is None or not self.report.plans:
            return
        [pp] = self.report.plans
        if pp.plan is not None and pp.spec is not None:
            assert pp.spec.min <= pp.plan.desired <= pp.spec.max

    @invariant()
    def never_beyond_max_plus_surge(self) -> None:
        if self.h is None:
            return
        assert len(self.h.instances()) <= max(self.maxes) + 1

    @invariant()
    def no_scale_down_inside_the_cooldown(self) -> None:
        # The wait is chosen by the previous decision's direction, as the Autoscaler does;
        # a scale-up may come sooner (blocked work does not wait), a scale-down never.
        for (before, previous), (after, direction) in itertools.pairwise(self.decisions):
            if direction == "down":
                wait = COOLDOWN_ON_SCALE_UP if previous == "up" else COOLDOWN
                assert after - before >= wait - 1, self.decisions  # whole seconds in status

    def teardown(self) -> None:
        try:
            if self.h is not None:
                self.workload(0)
                for _ in range(40):  # past the cooldown, back to min
                    self.time_passes(20.0)
                    self.no_scale_down_inside_the_cooldown()
                self.run(self.h.converge(max_passes=60))
                lo, _ = self.bounds
                assert len(self.h.instances()) == max(lo, 0)
        finally:
            self.run(self.stack.aclose())
            self.loop.close()


AutoscaleMachine.TestCase.settings = stateful_settings(ci_examples=4, steps=15)
TestAutoscaleStateful = AutoscaleMachine.TestCase
