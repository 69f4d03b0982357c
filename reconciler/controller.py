"""The loop: level-triggered reconciliation of every pool.

One pass = read the pool variables, observe both inventories once, plan each
pool, execute. The loop wakes on a pool variable change (blocking query), a node
change (blocking query), the resync timer (Multipass has no watch API) and an
action finishing; it always re-observes before planning and never trusts its
memory of what it did over what the world says.

Failures are contained: a pool whose spec is invalid plans nothing but the
others go on; a pool whose planning raises anything unexpected (a bug) plans
nothing, records the error in its status and is backed off, and the others go
on; a failed read plans nothing at all this pass (a failed instance list is not
"zero instances"); errors back off exponentially per pool, and the loop wakes
when the earliest backoff ends.

Leadership and shutdown: no action is started, and the executor sends no call
(nor retry), unless ``fence`` holds; when it stops holding, the actions under
way are cancelled. On ``stop`` the loop starts nothing more, abandons queued
actions and retries, and waits at most ``shutdown_grace`` seconds for calls
already sent; only after ``run`` returns may the caller release the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler import cluster
from reconciler.clock import Clock
from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.execute import ActionResult, Executor
from reconciler.hosts_view import build_hosts
from reconciler.logs import scrub
from reconciler.model import BlockedAsk, Observed
from reconciler.observe import Observer
from reconciler.plan import Action, ActionKind, Plan, PoolWorld, Resources, group_by_pool, plan
from reconciler.plan.placement import footprint, free_capacity, pool_usage
from reconciler.pools import PoolSource, PoolVariable, PrefixListing, status_path
from reconciler.scaling.decide import LastScale
from reconciler.spec import PoolSpec, SpecError, needs_servers, parse_pool_spec
from reconciler.status import StatusWriter, error_items, last_scale_from, status_items
from reconciler.tasks import started
from reconciler.telemetry import Metrics
from reconciler.units import plural

log = logging.getLogger(__name__)

VERIFY_ROUNDS = 3  # plan, read the chosen victims, plan again: rarely needs a third
# Below the job's kill_timeout (30 s, manifests/multipass-reconciler.nomad.hcl), leaving
# room for the lock release (leadership.RELEASE_WAIT) before Nomad kills the task.
SHUTDOWN_GRACE = 20.0
# Purges too: with its instance gone, a node record is ours only by what a full read shows.
DISRUPTIVE = (ActionKind.DRAIN, ActionKind.DELETE, ActionKind.PURGE_NODE)


def unread_targets(plans: Iterable[PoolPlan], observed: Observed) -> set[str]:
    """IDs of nodes that planned drains or deletes target but that were not read in full."""
    targets = {
        a.node_id
        for pp in plans
        if pp.plan is not None
        for a in pp.plan.actions
        if a.kind in DISRUPTIVE and a.node_id is not None
    }
    if not targets:
        return targets  # most plans disrupt nothing: no walk over the world's nodes for them
    return targets - {n.id for n in observed.nodes if n.detailed}


def without_unread_targets(pp: PoolPlan, observed: Observed) -> PoolPlan:
    """Holds back disruptive actions whose node could still not be read in full."""
    if pp.plan is None:
        return pp
    unread = unread_targets([pp], observed)
    if not unread:
        return pp
    kept = tuple(a for a in pp.plan.actions if a.node_id not in unread or a.kind not in DISRUPTIVE)
    note = (
        "held back until their nodes are read in full: "
        f"{plural(len(unread), 'drain, delete or purge', 'drains, deletes or purges')}"
    )
    plan_ = dataclasses.replace(pp.plan, actions=kept, notes=(*pp.plan.notes, note))
    return dataclasses.replace(pp, plan=plan_)


def finalizing(planned: Plan) -> Plan:
    """A deleted pool's plan: every member goes, each action saying why."""
    actions = tuple(dataclasses.replace(a, reason="spec deleted") for a in planned.actions)
    return dataclasses.replace(
        planned,
        actions=actions,
        desired_reason="spec deleted: scaled to zero, then its status is removed",
    )


def finalized(pp: PoolPlan) -> bool:
    """A deleted pool with nothing left of it: its status (the finalizer) can go."""
    p = pp.plan
    return pp.variable.deleted and p is not None and not p.members and not p.actions


@dataclass(frozen=True)
class PoolPlan:
    """One pool's outcome of planning: a plan, or why there is none."""

    variable: PoolVariable
    spec: PoolSpec | None
    plan: Plan | None
    problems: tuple[str, ...] = ()  # the spec is invalid: what is wrong with it
    error: str | None = None  # planning failed unexpectedly (a bug): the pool is backed off

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
    not_before: float = 0.0  # on clock.monotonic()


@dataclass
class _Crash:
    """A pool whose planning raised: not planned again before ``not_before`` unless edited."""

    error: str
    index: int  # the pool variable's index that crashed; an edit is tried at once
    failures: int = 0
    not_before: float = 0.0  # on clock.monotonic()


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
        shutdown_grace: float = SHUTDOWN_GRACE,
        read_timeout: float | None = None,
    ) -> None:
        self.pools = pools
        self.observer = observer
        self.executor = executor
        self.clock = clock
        self.resync = resync
        # Real seconds a pass's reads may take before the pass counts as failed (and each
        # pool's status says so): within one resync, so a hang shows before the next.
        self.read_timeout = read_timeout if read_timeout is not None else max(5.0, resync * 0.8)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._backoff: dict[str, _Backoff] = {}
        self._crashes: dict[str, _Crash] = {}
        self._loaded: list[PoolVariable] = []  # the pool variables this pass read
        # Pools the last pass left alone because of a backoff, and when it ends: the
        # loop wakes then (even if it ended while that pass was still writing status).
        self._deferred: dict[str, float] = {}
        self.shutdown_grace = shutdown_grace
        self._stop: asyncio.Event | None = None  # run()'s stop: no action starts once set
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[ActionResult]] = set()
        self.on_pass: Callable[[PassReport], None] | None = None
        # Told each pass's plans before its actions start, and each action's result as it
        # finishes (abandoned ones aside): `apply` prints them as they happen.
        self.on_plans: Callable[[list[PoolPlan]], None] | None = None
        self.on_action: Callable[[ActionResult], None] | None = None
        self.status = status  # read for cooldowns always; written after passes if write_status
        self.write_status = write_status
        self.metrics = metrics
        self.fence = fence
        self._last_results: dict[str, list[ActionResult]] = {}  # finished since the last status
        self._last_plans: list[PoolPlan] = []  # for the resync period of autoscaled pools
        # Each pool's last parse, reused while its variable is the same (see _parsed).
        self._specs: dict[str, tuple[PoolVariable, PoolSpec | tuple[str, ...]]] = {}
        self._planned_at: dict[str, int] = {}  # pool -> its variable's index when last planned
        self._join: cluster.JoinReader | None = None  # made at the first launch that needs it
        self._invalid: dict[str, tuple[int, tuple[str, ...]]] = {}  # logged: index, problems
        self._autoscaled = False  # whether the last pass read a pool with a policy

    @property
    def fence(self) -> Callable[[], bool] | None:
        """Leader election's is_leader; None: always act. The executor asks it too."""
        return self._fence

    @fence.setter
    def fence(self, fence: Callable[[], bool] | None) -> None:
        self._fence = fence
        self.executor.fence = fence  # checked again before every call it sends

    # ------------------------------------------------------------ one pass

    async def plan_all(
        self,
        only: str | None = None,
        *,
        edited_first: Callable[[list[PoolPlan]], Awaitable[None]] | None = None,
    ) -> tuple[list[PoolPlan], Observed]:
        """Read specs and the world, plan every pool. Changes nothing itself.

        ``edited_first``: given the final plans of the pools whose variable changed
        since the last pass as soon as they are known, before the pools after them
        (in name order, as always) are planned: the loop starts their actions there,
        so an edit does not wait for every other pool's plan. No plan depends on it.

        Raises a ReconcilerError when a read fails: no partial view is ever planned on.
        """
        # Taken before observing: an action that ends while the world is read may
        # not show in what was read, and must still count as under way, or it
        # would be planned a second time.
        inflight = frozenset(self.executor.inflight)
        if self._join is not None:
            self._join.forget_ahead()  # what an earlier pass read ahead is not this pass's

        # One list of `<prefix>` serves the pools, their statuses and the host variables.
        listing = PrefixListing(self.pools.nomad, self.pools.prefix) if only is None else None
        # Blocked evaluations matter only to a policy: read beside the world when the
        # last pass had a pool with one, else only once this pass's variables show one.
        early_blocked = self._read_blocked() if self._autoscaled else None

        async def specs() -> tuple[
            list[PoolVariable], dict[str, LastScale], tuple[BlockedAsk, ...]
        ]:
            variables = await self.pools.load(only, listing)
            self._loaded = variables  # for the status of a pass whose reads then fail
            if only is None:
                self._forget_specs(variables)
            for v in variables:
                # Parsed now, while the world is still being read: an edited pool's
                # parse (its template rendered and checked) costs its reaction nothing.
                self._parsed(v)
            if edited_first is not None and any(self._may_join(v) for v in variables):
                # An edit in the loop is when a launch is likely: how to join is read
                # beside the rest of the pass, not after its planning.
                self._join_reader().read_ahead(self.pools.own_index)
            self._autoscaled = any(is_autoscaled(v) for v in variables)
            blocked = (early_blocked or self._read_blocked()) if self._autoscaled else None
            try:
                scales = await self._last_scales(variables)
                return variables, scales, await blocked if blocked is not None else ()
            finally:
                if blocked is not None:
                    blocked.cancel()  # nothing once read; a read no longer wanted otherwise

        # The world does not depend on the specs: both are read at once. Each
        # runs to its end, so a failed observation still knows the pools it was for.
        try:
            # A read that hangs must not hold the pass (and the pools' status) forever:
            # the clients' own deadlines and retries can add up to minutes.
            read_world, read_specs = await asyncio.wait_for(
                asyncio.gather(self.observer.observe(listing), specs(), return_exceptions=True),
                self.read_timeout,
            )
        except TimeoutError:
            raise TemporaryError(
                f"reading multipassd and Nomad did not finish within {self.read_timeout:g}s "
                "(a read hangs); nothing is planned until it answers"
            ) from None
        finally:
            if early_blocked is not None:
                early_blocked.cancel()  # no pool has a policy any more, or the reads failed
        if isinstance(read_specs, BaseException):
            raise read_specs
        if isinstance(read_world, BaseException):
            raise read_world
        (variables, scaled, blocked), observed = read_specs, read_world
        if blocked:
            observed = dataclasses.replace(observed, blocked=blocked)
        now = self.clock.now()

        # Grouped once for all the pools: each plan then reads only its own pool.
        worlds = group_by_pool(observed)
        fleet_free = self._fleet_free(variables, worlds, inflight, observed)
        # Each pool's launches take their room before the next pool places, so two
        # pools never count on the same free memory; a pool planned again (its victims
        # read in full) starts from what it had the first time.
        free_before: dict[str, dict[str, Resources]] = {}

        async def plan_each(variables: list[PoolVariable]) -> dict[str, PoolPlan]:
            plans = {}
            for v in variables:
                # Planning yields between pools, so actions already started (the edited
                # pools') go on towards the daemon while the other pools are planned.
                await asyncio.sleep(0)
                free = None
                first = v.pool not in free_before
                if fleet_free is not None:
                    free = free_before.setdefault(v.pool, dict(fleet_free))
                pp = self._held_back(v) or self._plan_one(
                    v,
                    observed,
                    now,
                    inflight,
                    scaled.get(v.pool),
                    worlds.get(v.pool, PoolWorld()),
                    self._parsed(v),
                    free,
                )
                if first and fleet_free is not None and pp.plan and pp.spec:
                    _take_room(fleet_free, pp.spec, pp.plan)
                plans[v.pool] = pp
            return plans

        plans: dict[str, PoolPlan] = {}

        async def settle(pools: list[PoolVariable]) -> list[PoolPlan]:
            """Plan ``pools`` until none of their plans picks a node not read in full."""
            nonlocal observed, worlds
            plans.update(await plan_each(pools))
            # Nothing is drained or deleted on the strength of a node-list entry:
            # the nodes a plan would disrupt are read in full (meta: protection and
            # ownership) and their pools planned again, until the plans stop picking
            # unread nodes. Each round reads only the new victims and plans only the
            # pools that picked them: a node's full read changes no other pool's part
            # of the world (group_by_pool puts it under the pool its name says, or none).
            for _ in range(VERIFY_ROUNDS):
                unread = unread_targets((plans[v.pool] for v in pools), observed)
                if not unread:
                    break
                again = [v for v in pools if unread_targets([plans[v.pool]], observed)]
                observed = await self.observer.detail(observed, unread)
                worlds = group_by_pool(observed)
                plans.update(await plan_each(again))
            return [without_unread_targets(plans[v.pool], observed) for v in pools]

        edited = [i for i, v in enumerate(variables) if self._planned_at.get(v.pool) != v.index]
        if edited_first is not None and edited and edited[-1] < len(variables) - 1:
            # In name order, as in any pass (each pool's launches take their room before
            # the next pool places): the pools up to the last edited one, whose actions
            # may then start, and after them the rest.
            head = await settle(variables[: edited[-1] + 1])
            await edited_first([head[i] for i in edited])
            await settle(variables[edited[-1] + 1 :])
        else:
            await settle(variables)
        if only is None:
            self._planned_at = {v.pool: v.index for v in variables}
        return [without_unread_targets(plans[v.pool], observed) for v in variables], observed

    def _fleet_free(
        self,
        variables: list[PoolVariable],
        worlds: Mapping[str, PoolWorld],
        inflight: frozenset[tuple[str, str]],
        observed: Observed,
    ) -> dict[str, Resources] | None:
        """What each host has free once every pool's members have taken their room.

        None in a world before hosts (nothing is accounted). A pool whose spec is
        invalid is not counted: its sizes are unknown (a host's reserves cover such
        VMs, as they cover VMs not ours).
        """
        if not observed.hosts:
            return None
        used: dict[str, Resources] = {}
        for v in variables:
            spec = self._parsed(v)
            if not isinstance(spec, PoolSpec):
                continue
            for host, taken in pool_usage(spec, worlds.get(v.pool, PoolWorld()), inflight).items():
                used[host] = used.get(host, Resources()) + taken
        return free_capacity(observed.hosts, used)

    def _read_blocked(self) -> asyncio.Task[tuple[BlockedAsk, ...]]:
        return started(self.observer.blocked())

    async def _last_scales(self, variables: list[PoolVariable]) -> dict[str, LastScale]:
        """Last scaling decisions from the status of pools that have a policy (cooldowns)."""
        if self.status is None:
            return {}
        status = self.status
        # One list of the status variables (the one the pools' load just made, when it
        # made one): only those changed since this writer last read or wrote them are
        # read again.
        await status.refresh(status_path(self.pools.prefix, ""), self.pools.statuses)
        autoscaled = [v.pool for v in variables if is_autoscaled(v)]

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
        world: PoolWorld | None = None,
        parsed: PoolSpec | tuple[str, ...] | None = None,
        free: Mapping[str, Resources] | None = None,
    ) -> PoolPlan:
        """``parsed``: the variable's spec or its problems, if known (``_parsed``)."""
        try:
            if parsed is None:
                parsed = _parse(variable)
            spec = parsed
            if isinstance(spec, tuple):
                return PoolPlan(variable, None, None, spec)
            planned = plan(spec, observed, now, inflight, last_scale, world, free)
            if variable.deleted:
                planned = finalizing(planned)
            return PoolPlan(variable, spec, planned)
        except Exception as exc:  # a bug in one pool's planning must not stop the others
            log.debug("pool %s: planning raised", variable.pool, exc_info=True)
            # Scrubbed: the error goes to the status variable, which outlives any log.
            return PoolPlan(variable, None, None, error=scrub(f"{type(exc).__name__}: {exc}"))

    def _parsed(self, variable: PoolVariable) -> PoolSpec | tuple[str, ...] | None:
        """The pool's spec, or the problems that make it invalid; None if parsing raised.

        Parsed again only when the variable changed: a new ModifyIndex, or other
        items under the same one (a test's hand-made variable), so an edit is seen
        at the pass that reads it and an unchanged pool costs nothing to parse.
        """
        cached = self._specs.get(variable.pool)
        if cached is not None:
            seen, parsed = cached
            if seen.index == variable.index and seen.items == variable.items:
                return parsed
        try:
            parsed = _parse(variable)
        except Exception:  # a bug: not kept; _plan_one parses again and reports it
            return None
        self._specs[variable.pool] = (variable, parsed)
        return parsed

    def _forget_specs(self, variables: list[PoolVariable]) -> None:
        """Drop the parses of pools whose variables are gone."""
        loaded = {v.pool for v in variables}
        for pool in [p for p in self._specs if p not in loaded]:
            del self._specs[pool]

    def _held_back(self, variable: PoolVariable) -> PoolPlan | None:
        """The pool's last crash while it is backed off and unedited; None: plan it."""
        crash = self._crashes.get(variable.pool)
        if crash is None or crash.index != variable.index:
            return None
        if self.clock.monotonic() >= crash.not_before:
            return None
        return PoolPlan(variable, None, None, error=crash.error)

    def _note_crashes(self, plans: Iterable[PoolPlan]) -> None:
        """Back off pools whose planning crashed this pass; forget those that planned."""
        mono = self.clock.monotonic()
        for pp in plans:
            crash = self._crashes.get(pp.pool)
            if pp.error is None:
                self._crashes.pop(pp.pool, None)
                continue
            if crash is not None and crash.index == pp.variable.index and mono < crash.not_before:
                self._deferred[pp.pool] = crash.not_before
                continue  # held back (_held_back): not planned, so not a new failure
            failures = crash.failures + 1 if crash is not None else 1
            delay = self._delay(failures)
            self._crashes[pp.pool] = _Crash(pp.error, pp.variable.index, failures, mono + delay)
            self._deferred[pp.pool] = mono + delay
            log.error(
                "pool %s: planning failed, retried in %.0fs (or when its spec changes): %s",
                pp.pool,
                delay,
                pp.error,
                extra={"pool": pp.pool, "outcome": "error", "error": pp.error},
            )

    def _delay(self, failures: int) -> float:
        return min(self.backoff_max, self.backoff_base * 2 ** min(failures - 1, 30))

    async def reconcile_once(
        self, only: str | None = None, *, wait_actions: bool = True
    ) -> PassReport:
        """One level-triggered pass. With ``wait_actions`` false, actions run in the background.

        A standby (``fence`` says this replica does not lead) observes and plans,
        so it is warm and ready, but acts on nothing and writes no status.
        """
        report = PassReport()
        self._deferred = {}
        self._loaded = []
        started = time.monotonic()
        if self.metrics:
            self.metrics.pass_started()
        work: list[tuple[Action, asyncio.Task[ActionResult]]] = []
        early: dict[str, PoolPlan] = {}  # pools whose actions started before the rest planned

        async def start_edited(plans: list[PoolPlan]) -> None:
            if not self._leading():
                return
            plans = await self.with_discovered_servers(plans)
            work.extend(self._start_actions(PassReport(plans), wait_actions=False))
            early.update((pp.pool, pp) for pp in plans)

        try:
            # In the loop, an edited pool's actions start as soon as its plan is known.
            first = start_edited if not wait_actions and self.on_plans is None else None
            report.plans, observed = await self.plan_all(only, edited_first=first)
            self._last_plans = report.plans
            self._note_crashes(report.plans)
        except ReconcilerError as exc:
            report.error = str(exc)
            log.warning("pass skipped: %s", exc)
            await self._write_read_failure(exc)
            return report
        finally:
            if self.metrics:
                self.metrics.pass_done(time.monotonic() - started)
        report.standby = not self._leading()
        if not report.standby:
            rest = [pp for pp in report.plans if pp.pool not in early]
            joined = {pp.pool: pp for pp in await self.with_discovered_servers(rest)} | early
            report.plans = [joined[pp.pool] for pp in report.plans]
        if self.on_plans:
            self.on_plans(report.plans)
        work += self._start_actions(report, wait_actions, skip=early)
        if work and not wait_actions:
            # Let the actions just started send their first call before the metrics
            # and status writes take the CPU: the launch or drain is what an edit waits for.
            await asyncio.sleep(0)
        if self.metrics:
            self.metrics.observed()
            self.metrics.observe_hosts(build_hosts(report.plans, observed.hosts))
            for pp in report.plans:
                plan_ = pp.plan
                self.metrics.observe_pool(
                    pp.pool, plan_.counts if plan_ else None, plan_.desired if plan_ else None
                )
        if wait_actions and work:
            report.results = await _results(work)
        if not report.standby:
            await self._write_status(report)
        if self.on_pass:
            self.on_pass(report)
        return report

    async def with_discovered_servers(self, plans: list[PoolPlan]) -> list[PoolPlan]:
        """Launches of the shipped template join the cluster as Nomad describes it.

        Servers from GET /v1/status/peers for pools without `servers`, and the TLS
        material of `<prefix>` (reconciler.cluster); read only when such a pool
        launches, the TLS material only when its variable moved. Without them a
        pool's launches wait: a VM that cannot join would only be replaced later.
        """
        wanting = {
            id(pp)
            for pp in plans
            if pp.spec is not None
            and pp.plan is not None
            and cluster.uses_shipped_template(pp.spec)
            and any(a.kind is ActionKind.LAUNCH for a in pp.plan.actions)
        }
        if not wanting:
            return plans
        need_servers = any(
            id(pp) in wanting and pp.spec is not None and needs_servers(pp.spec) for pp in plans
        )
        join, why = cluster.ClusterJoin(), ""
        try:
            join = await self._join_reader().read(servers=need_servers, index=self.pools.own_index)
        except ReconcilerError as exc:
            why = f"cannot read how to join the cluster: {exc}"
        out = []
        for pp in plans:
            if id(pp) not in wanting:
                out.append(pp)
                continue
            assert pp.spec is not None and pp.plan is not None
            problem = why or cluster.join_problem(pp.spec, join)
            if problem is None:
                out.append(dataclasses.replace(pp, spec=cluster.for_launch(pp.spec, join)))
                continue
            log.warning("pool %s: launches held: %s", pp.pool, problem, extra={"pool": pp.pool})
            kept = tuple(a for a in pp.plan.actions if a.kind is not ActionKind.LAUNCH)
            note = f"launches held: {problem}"
            held = dataclasses.replace(
                pp.plan, actions=kept, notes=(*pp.plan.notes, note), launches_held=problem
            )
            out.append(dataclasses.replace(pp, plan=held))
        return out

    def _join_reader(self) -> cluster.JoinReader:
        if self._join is None:
            self._join = cluster.JoinReader(self.pools.nomad, self.pools.prefix)
        return self._join

    def _may_join(self, variable: PoolVariable) -> bool:
        """Edited since last planned, and launched from the shipped template (which joins)."""
        spec = self._parsed(variable)
        return (
            self._planned_at.get(variable.pool) != variable.index
            and isinstance(spec, PoolSpec)
            and cluster.uses_shipped_template(spec)
        )

    def _start_actions(
        self, report: PassReport, wait_actions: bool, skip: Iterable[str] = ()
    ) -> list[tuple[Action, asyncio.Task[ActionResult]]]:
        """Start the planned actions of every pool that is neither invalid nor backed off.

        ``skip``: pools whose actions this pass started already.
        """
        mono = self.clock.monotonic()
        work: list[tuple[Action, asyncio.Task[ActionResult]]] = []
        skip = set(skip)
        for pp in report.plans:
            if pp.pool in skip:
                continue
            if pp.problems:
                self._log_invalid(pp)
                continue
            self._invalid.pop(pp.pool, None)
            if pp.error is not None:
                continue  # logged by _note_crashes when it happened
            assert pp.spec is not None and pp.plan is not None
            backoff = self._backoff.get(pp.pool)
            if backoff and mono < backoff.not_before and not wait_actions:
                self._deferred[pp.pool] = backoff.not_before
                continue
            for action in pp.plan.actions:
                if self._stopping():  # checked per action: SIGTERM can come mid-pass
                    return work
                if not self._leading():  # likewise: a lease can end mid-pass
                    report.standby = True
                    return work
                task = asyncio.create_task(self.executor.run_action(pp.spec, action))
                task.add_done_callback(self._action_done(pp.pool))
                self._tasks.add(task)
                work.append((action, task))
        return work

    def _log_invalid(self, pp: PoolPlan) -> None:
        """An invalid spec, logged once per change of the spec, not at every resync."""
        seen = (pp.variable.index, pp.problems)
        if self._invalid.get(pp.pool) == seen:
            return
        self._invalid[pp.pool] = seen
        problems = "; ".join(pp.problems)
        log.error(
            "pool %s: invalid spec, nothing is planned for it: %s",
            pp.pool,
            problems,
            extra={"pool": pp.pool, "outcome": "invalid", "error": problems},
        )

    def _leading(self) -> bool:
        return self.fence is None or self.fence()

    def _stopping(self) -> bool:
        return (self._stop is not None and self._stop.is_set()) or self.executor.stopping

    def wake(self) -> None:
        """Run a pass now (leadership gained, say)."""
        self._wake.set()

    async def _write_status(self, report: PassReport) -> None:
        if self.status is None or not self.write_status:
            return
        now = self.clock.now()
        for pp in report.plans:
            # An unchanged status is built and compared without one await: yield between
            # pools, or the actions just started would wait behind every pool's status
            # on their way to the daemon.
            await asyncio.sleep(0)
            results = self._last_results.pop(pp.pool, [])
            if pp.error is not None:
                await self._write_crash(pp)
                continue
            if finalized(pp):
                await self._remove_status(pp.pool)
                continue

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

    async def _remove_status(self, pool: str) -> None:
        """The last step of deleting a pool: no member is left, so its finalizer goes."""
        assert self.status is not None
        try:
            await self.status.nomad.delete_var(status_path(self.pools.prefix, pool))
        except ReconcilerError as exc:
            log.warning("pool %s: status not removed: %s", pool, exc, extra={"pool": pool})
            return
        log.info(
            "pool %s: spec deleted and every member removed; status removed",
            pool,
            extra={"pool": pool, "action": "finalize", "outcome": "ok"},
        )

    async def _write_crash(self, pp: PoolPlan) -> None:
        """Record a crashed planning as the pool's last error; the rest of its status stays."""
        await self._write_error(
            pp.variable, f"planning failed: {pp.error}", "PlanningFailed", pp.variable.index
        )

    async def _write_read_failure(self, exc: ReconcilerError) -> None:
        """A read failed, so nothing was planned: say so in each loaded pool's status.

        Only pools whose variables were read this pass (a failed pool list names
        none), and only while leading; the first status write that fails ends it
        (Nomad itself is then most likely what is down).
        """
        if self.status is None or not self.write_status or not self._leading():
            return
        error = f"observing failed, nothing planned: {exc}"
        for variable in self._loaded:
            if not await self._write_error(variable, error, "ObserveFailed"):
                return

    async def _write_error(
        self, variable: PoolVariable, error: str, reason: str, index: int | None = None
    ) -> bool:
        """Degraded with ``reason`` and ``error`` in the pool's status; False if not written."""
        assert self.status is not None
        now = self.clock.now()

        def build(previous: Mapping[str, str]) -> dict[str, str]:
            return error_items(previous, error, reason, now, index)

        try:
            await self.status.write(status_path(self.pools.prefix, variable.pool), build)
        except ReconcilerError as exc:
            log.warning("pool %s: status not written: %s", variable.pool, exc)
            return False
        return True

    def _action_done(self, pool: str) -> Callable[[asyncio.Task[ActionResult]], None]:
        def done(task: asyncio.Task[ActionResult]) -> None:
            self._tasks.discard(task)
            if task.cancelled():
                return
            result = task.result()
            self._wake.set()  # an action finished: look at the world again
            if result.abandoned:
                return  # never sent (lease gone, or stopping): no verdict on the pool
            self._last_results.setdefault(pool, []).append(result)
            if self.on_action:
                self.on_action(result)
            if self.metrics:
                self.metrics.action_done(pool, result.action.kind.value, result.ok, result.duration)
            if result.in_progress:
                return  # our own launch still under way: neither a success nor a failure
            backoff = self._backoff.setdefault(pool, _Backoff())
            if result.ok:
                backoff.failures = 0
                backoff.not_before = 0.0
            else:
                backoff.failures += 1
                backoff.not_before = self.clock.monotonic() + self._delay(backoff.failures)

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
        """Reconcile until ``stop`` is set; then wind the actions down (see ``_wind_down``).

        Returns only once no call of ours is in flight (or ``shutdown_grace`` ran
        out and they were cancelled): the caller may release the lock after it.
        """
        self._stop = stop
        watchers = [
            asyncio.create_task(self._watch(self.pools.wait_for_change, "pool variables")),
            asyncio.create_task(self._watch(self.observer.wait_for_host_change, "host variables")),
            asyncio.create_task(self._watch(self.observer.wait_for_node_change, "nodes")),
            asyncio.create_task(self._resync_timer()),
        ]
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await self._pass_in_loop()
                await self._wait_for_wake(stopper)
                if not self._leading():
                    self._cancel_actions("this replica no longer leads")
        finally:
            for w in watchers:
                w.cancel()
            stopper.cancel()
            for w in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await w
            await self._wind_down()

    async def _pass_in_loop(self) -> None:
        """One pass of ``run``; whatever it raises is logged, and the loop goes on."""
        try:
            await self.reconcile_once(wait_actions=False)
        except Exception:  # a bug outside any one pool: the next wake tries again
            log.exception("reconciliation pass failed")

    async def _wait_for_wake(self, stopper: asyncio.Task[bool]) -> None:
        """Until a watch, the resync timer, an action, the end of a backoff or ``stop``."""
        waker = asyncio.create_task(self._wake.wait())
        waiting: set[asyncio.Future[Any]] = {waker, stopper}
        backoff_ends = self._next_backoff_end()
        timer = None
        if backoff_ends is not None:
            timer = asyncio.create_task(self.clock.sleep(backoff_ends))
            waiting.add(timer)
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        waker.cancel()
        if timer is not None:
            timer.cancel()
        self._wake.clear()

    def _next_backoff_end(self) -> float | None:
        """Seconds until the first backoff the last pass waited on ends (0: ended); None: none."""
        if not self._deferred:
            return None
        return max(0.0, min(self._deferred.values()) - self.clock.monotonic())

    def _cancel_actions(self, why: str) -> None:
        if self._tasks:
            log.warning("cancelling %s under way: %s", plural(len(self._tasks), "action"), why)
        for task in list(self._tasks):
            task.cancel()

    async def _wind_down(self) -> None:
        """Stop: nothing new is sent; calls in flight get ``shutdown_grace`` seconds.

        Queued actions and pending retries end at once (the executor refuses
        them); what is still running when the grace ends is cancelled, so the
        lock can be released before the job's kill_timeout.
        """
        self.executor.stop()
        running = set(self._tasks)
        if not running:
            return
        log.info(
            "shutdown: waiting up to %gs for %s",
            self.shutdown_grace,
            plural(len(running), "action"),
        )
        grace = asyncio.create_task(self.clock.sleep(self.shutdown_grace))
        finished = asyncio.create_task(asyncio.wait(running))
        await asyncio.wait({grace, finished}, return_when=asyncio.FIRST_COMPLETED)
        grace.cancel()
        finished.cancel()
        left = [t for t in running if not t.done()]
        if left:
            log.warning(
                "shutdown: %s still running after %gs, cancelled",
                plural(len(left), "action"),
                self.shutdown_grace,
            )
            for task in left:
                task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

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
                delay = self._delay(failures + 1)  # the first retry waits twice the base
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


def is_autoscaled(variable: PoolVariable) -> bool:
    """The pool has a policy: its plan reads cooldowns and blocked evaluations."""
    return "policy" in variable.items


def _take_room(free: dict[str, Resources], spec: PoolSpec, planned: Plan) -> None:
    """Take what the plan's launches need out of the hosts' free room."""
    for a in planned.actions:
        if a.kind is ActionKind.LAUNCH and a.host in free:
            free[a.host] = free[a.host] - footprint(spec)


def _parse(variable: PoolVariable) -> PoolSpec | tuple[str, ...]:
    """The variable's spec, or the problems that make it invalid."""
    try:
        return parse_pool_spec(variable.pool, variable.items, variable.index)
    except SpecError as exc:
        return tuple(exc.problems)


async def _results(
    work: list[tuple[Action, asyncio.Task[ActionResult]]],
) -> list[ActionResult]:
    """Each started action's result; one cancelled (lease lost, shutdown) counts as abandoned."""
    await asyncio.gather(*(task for _, task in work), return_exceptions=True)
    return [
        task.result()
        if not task.cancelled()
        else ActionResult(action, ok=False, duration=0.0, error="cancelled", abandoned=True)
        for action, task in work
    ]
