"""The loop: level-triggered reconciliation of every pool.

One pass = read the pool variables, observe both inventories once, plan each
pool, execute. The loop wakes on a pool variable change (blocking query), a node
change (blocking query), the resync timer (Multipass has no watch API) and an
action finishing; it always re-observes before planning and never trusts its
memory of what it did over what the world says.

Failures are contained: a pool whose spec is invalid plans nothing but the
others go on; a failed read plans nothing at all this pass (a failed instance
list is not "zero instances"); errors back off exponentially per pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.clock import Clock
from reconciler.errors import ReconcilerError
from reconciler.execute import ActionResult, Executor
from reconciler.model import Observed
from reconciler.observe import Observer
from reconciler.plan import ActionKind, Plan, plan
from reconciler.pools import PoolSource, PoolVariable, status_path
from reconciler.scaling.decide import LastScale
from reconciler.spec import PoolSpec, SpecError, parse_pool_spec
from reconciler.status import StatusWriter, last_scale_from, status_items
from reconciler.telemetry import Metrics

log = logging.getLogger(__name__)

VERIFY_ROUNDS = 3  # plan, read the chosen victims, plan again: rarely needs a third
DISRUPTIVE = (ActionKind.DRAIN, ActionKind.DELETE)


def unread_targets(plans: Iterable[PoolPlan], observed: Observed) -> set[str]:
    """IDs of nodes that planned drains or deletes target but that were not read in full."""
    detailed = {n.id for n in observed.nodes if n.detailed}
    return {
        a.node_id
        for pp in plans
        if pp.plan is not None
        for a in pp.plan.actions
        if a.kind in DISRUPTIVE and a.node_id is not None and a.node_id not in detailed
    }


def without_unread_targets(pp: PoolPlan, observed: Observed) -> PoolPlan:
    """Holds back disruptive actions whose node could still not be read in full."""
    if pp.plan is None:
        return pp
    unread = unread_targets([pp], observed)
    if not unread:
        return pp
    kept = tuple(a for a in pp.plan.actions if a.node_id not in unread or a.kind not in DISRUPTIVE)
    note = f"held back until their nodes are read in full: {len(unread)} drains/deletes"
    plan_ = dataclasses.replace(pp.plan, actions=kept, notes=(*pp.plan.notes, note))
    return dataclasses.replace(pp, plan=plan_)


@dataclass(frozen=True)
class PoolPlan:
    """One pool's outcome of planning: a plan, or why there is none."""

    variable: PoolVariable
    spec: PoolSpec | None
    plan: Plan | None
    problems: tuple[str, ...] = ()

    @property
    def pool(self) -> str:
        return self.variable.pool


@dataclass
class PassReport:
    plans: list[PoolPlan] = field(default_factory=list)
    results: list[ActionResult] = field(default_factory=list)
    error: str | None = None
    standby: bool = False  # this replica did not lead: planned, acted on nothing

    @property
    def converged(self) -> bool:
        """Nothing to do, nothing failed, nothing on the way for every valid, unpaused pool."""
        if self.error or any(not r.ok for r in self.results):
            return False
        for pp in self.plans:
            p = pp.plan
            if p is None or p.paused:
                continue
            if p.has_changes:
                return False
            if any(p.counts[k] for k in ("pending", "draining", "drained", "deleting")):
                return False
            # A VM gone but its node still registered: the purge is still to come
            # (once Nomad marks the node down), so the pool does not match yet.
            if pp.spec is not None and pp.spec.node_purge and p.counts["node-only"]:
                return False
        return True


@dataclass
class _Backoff:
    failures: int = 0
    not_before: float = 0.0


class Controller:
    def __init__(
        self,
        pools: PoolSource,
        observer: Observer,
        executor: Executor,
        clock: Clock,
        *,
        resync: float = 30.0,
        backoff_base: float = 2.0,
        backoff_max: float = 300.0,
        status: StatusWriter | None = None,
        write_status: bool = True,
        metrics: Metrics | None = None,
        fence: Callable[[], bool] | None = None,
    ) -> None:
        self.pools = pools
        self.observer = observer
        self.executor = executor
        self.clock = clock
        self.resync = resync
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._backoff: dict[str, _Backoff] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[ActionResult]] = set()
        self.on_pass: Callable[[PassReport], None] | None = None
        self.status = status  # read for cooldowns always; written after passes if write_status
        self.write_status = write_status
        self.metrics = metrics
        self.fence = fence  # leader election's is_leader; None: always act
        self._last_results: dict[str, list[ActionResult]] = {}  # finished since the last status
        self._last_plans: list[PoolPlan] = []  # for the resync period of autoscaled pools

    # ------------------------------------------------------------ one pass

    async def plan_all(self, only: str | None = None) -> tuple[list[PoolPlan], Observed]:
        """Read specs and the world, plan every pool. Changes nothing.

        Raises a ReconcilerError when a read fails: no partial view is ever planned on.
        """
        variables = await self.pools.load(only)
        observed, scaled = await asyncio.gather(
            self.observer.observe(), self._last_scales(variables)
        )
        now = self.clock.now()
        inflight = frozenset(self.executor.inflight)

        def plan_each() -> list[PoolPlan]:
            return [
                self._plan_one(v, observed, now, inflight, scaled.get(v.pool)) for v in variables
            ]

        plans = plan_each()
        # Nothing is drained or deleted on the strength of a node-list entry:
        # the nodes a plan would disrupt are read in full (meta: protection and
        # ownership) and the pools planned again, until the plans stop picking
        # unread nodes. Each round reads only the new victims.
        for _ in range(VERIFY_ROUNDS):
            unread = unread_targets(plans, observed)
            if not unread:
                break
            observed = await self.observer.detail(observed, unread)
            plans = plan_each()
        return [without_unread_targets(pp, observed) for pp in plans], observed

    async def _last_scales(self, variables: list[PoolVariable]) -> dict[str, LastScale]:
        """Last scaling decisions from the status of pools that have a policy (cooldowns)."""
        if self.status is None:
            return {}
        status = self.status
        autoscaled = [v.pool for v in variables if "policy" in v.items]

        async def one(pool: str) -> tuple[str, LastScale | None]:
            items = await status.read(status_path(self.pools.prefix, pool))
            return pool, last_scale_from(items)

        found = await asyncio.gather(*(one(p) for p in autoscaled))
        return {pool: last for pool, last in found if last is not None}

    def _plan_one(
        self,
        variable: PoolVariable,
        observed: Observed,
        now: float,
        inflight: frozenset[tuple[str, str]],
        last_scale: LastScale | None = None,
    ) -> PoolPlan:
        try:
            spec = parse_pool_spec(variable.pool, variable.items, variable.index)
        except SpecError as exc:
            return PoolPlan(variable, None, None, tuple(exc.problems))
        return PoolPlan(variable, spec, plan(spec, observed, now, inflight, last_scale))

    async def reconcile_once(
        self, only: str | None = None, *, wait_actions: bool = True
    ) -> PassReport:
        """One level-triggered pass. With ``wait_actions`` false, actions run in the background.

        A standby (``fence`` says this replica does not lead) observes and plans,
        so it is warm and ready, but acts on nothing and writes no status.
        """
        report = PassReport()
        started = time.monotonic()
        if self.metrics:
            self.metrics.pass_started()
        try:
            report.plans, _ = await self.plan_all(only)
            self._last_plans = report.plans
        except ReconcilerError as exc:
            report.error = str(exc)
            log.warning("pass skipped: %s", exc)
            return report
        finally:
            if self.metrics:
                self.metrics.pass_done(time.monotonic() - started)
        if self.metrics:
            self.metrics.observed()
            for pp in report.plans:
                plan_ = pp.plan
                self.metrics.observe_pool(
                    pp.pool, plan_.counts if plan_ else None, plan_.desired if plan_ else None
                )
        report.standby = not self._leading()
        now = self.clock.now()
        work: list[asyncio.Task[ActionResult]] = []
        for pp in report.plans:
            if pp.problems:
                log.error("pool %s: invalid spec: %s", pp.pool, "; ".join(pp.problems))
                continue
            assert pp.spec is not None and pp.plan is not None
            backoff = self._backoff.get(pp.pool)
            if backoff and now < backoff.not_before and not wait_actions:
                continue
            for action in pp.plan.actions:
                if not self._leading():  # checked per action: a lease can end mid-pass
                    report.standby = True
                    break
                task = asyncio.create_task(self.executor.run_action(pp.spec, action))
                task.add_done_callback(self._action_done(pp.pool))
                self._tasks.add(task)
                work.append(task)
        if wait_actions and work:
            report.results = list(await asyncio.gather(*work))
        if not report.standby:
            await self._write_status(report)
        if self.on_pass:
            self.on_pass(report)
        return report

    def _leading(self) -> bool:
        return self.fence is None or self.fence()

    def wake(self) -> None:
        """Run a pass now (leadership gained, say)."""
        self._wake.set()

    async def _write_status(self, report: PassReport) -> None:
        if self.status is None or not self.write_status:
            return
        now = self.clock.now()
        for pp in report.plans:
            results = self._last_results.pop(pp.pool, [])

            def build(
                previous: Mapping[str, str],
                pp: PoolPlan = pp,
                results: list[ActionResult] = results,
            ) -> dict[str, str]:
                return status_items(pp.plan, pp.variable.index, pp.problems, results, previous, now)

            try:
                await self.status.write(status_path(self.pools.prefix, pp.pool), build)
            except ReconcilerError as exc:
                log.warning("pool %s: status not written: %s", pp.pool, exc)

    def _action_done(self, pool: str) -> Callable[[asyncio.Task[ActionResult]], None]:
        def done(task: asyncio.Task[ActionResult]) -> None:
            self._tasks.discard(task)
            if task.cancelled():
                return
            result = task.result()
            self._last_results.setdefault(pool, []).append(result)
            if self.metrics:
                self.metrics.action_done(pool, result.action.kind.value, result.ok, result.duration)
            backoff = self._backoff.setdefault(pool, _Backoff())
            if result.ok:
                backoff.failures = 0
                backoff.not_before = 0.0
            else:
                backoff.failures += 1
                delay = min(self.backoff_max, self.backoff_base * 2 ** (backoff.failures - 1))
                backoff.not_before = self.clock.now() + delay
            self._wake.set()  # an action finished: look at the world again

        return done

    async def reconcile_until_converged(
        self,
        only: str | None = None,
        *,
        timeout: float,
        poll: float = 2.0,
        progress: Callable[[PassReport], None] | None = None,
    ) -> PassReport:
        deadline = self.clock.now() + timeout
        while True:
            report = await self.reconcile_once(only)
            if progress is not None:
                progress(report)
            if report.converged:
                return report
            if self.clock.now() >= deadline:
                return report
            await self.clock.sleep(poll)

    # ------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile until ``stop`` is set; then let in-flight actions finish."""
        watchers = [
            asyncio.create_task(self._watch(self.pools.wait_for_change, "pool variables")),
            asyncio.create_task(self._watch(self.observer.wait_for_node_change, "nodes")),
            asyncio.create_task(self._resync_timer()),
        ]
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await self.reconcile_once(wait_actions=False)
                waker = asyncio.create_task(self._wake.wait())
                await asyncio.wait({waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                self._wake.clear()
        finally:
            for w in watchers:
                w.cancel()
            stopper.cancel()
            for w in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await w
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch(self, wait_for_change: Callable[[], object], what: str) -> None:
        failures = 0
        while True:
            try:
                await wait_for_change()  # type: ignore[misc]
                failures = 0
                self._wake.set()
            except asyncio.CancelledError:
                raise
            except ReconcilerError as exc:
                failures += 1
                delay = min(self.backoff_max, self.backoff_base * 2 ** min(failures, 10))
                log.warning("watching %s failed (%s); retrying in %.0fs", what, exc, delay)
                await self.clock.sleep(delay)

    async def _resync_timer(self) -> None:
        while True:
            await self.clock.sleep(self._next_resync())
            self._wake.set()

    def _next_resync(self) -> float:
        """The resync period, shortened to the quickest policy's evaluation_interval.

        Allocations changing does not wake the loop (no watch on them), so a pool
        with a policy is looked at again at least as often as its policy asks.
        """
        intervals = [
            pp.spec.policy.evaluation_interval
            for pp in self._last_plans
            if pp.spec is not None and pp.spec.policy is not None
        ]
        return min([self.resync, *intervals])
