"""The planner: ``plan(spec, observed, now, inflight) -> Plan``.

Pure: no I/O, no clock reads, no randomness. Everything it needs arrives as
arguments, so the same inputs always give the same plan and Hypothesis can
explore it over generated worlds. It works in the steps of a Kubernetes
controller, each its own module:

1. membership: instances and nodes of this pool become members, each in one phase
   (health), on one host;
2. removals: what is under way is finished (drained members deleted, orphan
   nodes purged);
3. rollout: launch what is missing (placement picks the hosts), drain what is in
   excess or to be replaced, within the surge / unavailable budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from reconciler.model import Observed
from reconciler.ownership import DEFAULT_HOST
from reconciler.plan import placement
from reconciler.plan.health import count_phases
from reconciler.plan.membership import group_by_pool, join
from reconciler.plan.model import (
    SERVING_PHASES,
    Action,
    ActionKind,
    Member,
    Phase,
    Plan,
    PoolWorld,
    Resources,
)
from reconciler.plan.removals import finish_removals
from reconciler.plan.rollout import Outcome, converge
from reconciler.scaling.decide import Decision, LastScale, decide
from reconciler.scaling.policy import Policy
from reconciler.scaling.signals import pool_signals
from reconciler.spec import PoolSpec
from reconciler.units import plural

# Actions that need the member's daemon: they wait while it cannot be read.
_NEED_DAEMON = (ActionKind.LAUNCH, ActionKind.DELETE)


def plan(
    spec: PoolSpec,
    observed: Observed,
    now: float,
    inflight: Iterable[tuple[str, str]] = (),
    last_scale: LastScale | None = None,
    world: PoolWorld | None = None,
    free: Mapping[str, Resources] | None = None,
) -> Plan:
    """Diff the pool's desired state against the observed world.

    ``last_scale``: the last autoscaling decision (from the status variable), for
    the policy's cooldowns; ignored for pools without a policy. ``world``: the
    pool's part of ``observed`` when the caller grouped it (``group_by_pool``)
    for several plans; found here otherwise. ``free``: what each host has left for
    this pool's new members, when the caller accounts several pools on one fleet
    (``placement.free_capacity``); else what is left beside this pool's own members.
    """
    if world is None:
        world = group_by_pool(observed).get(spec.pool, PoolWorld())
    inflight_keys = frozenset(inflight)
    members, stale_nodes = join(spec, observed, now, inflight_keys, world)
    members = _with_displacement(spec, observed, members)
    if free is None and observed.hosts:  # before hosts, nothing is accounted
        free = placement.free_capacity(
            observed.hosts, placement.pool_usage(spec, world, inflight_keys)
        )

    def placer(count: int, among: Sequence[Member]) -> tuple[list[str], str | None]:
        return placement.place(spec, count, observed.hosts, free or {}, among)

    scaling = None
    if spec.policy is not None:
        scaling = autoscale(spec, spec.policy, members, world, observed, now, last_scale)
        desired, desired_reason = scaling.count, scaling.reason
    else:
        desired, desired_reason = desired_count(spec)
    counts = count_phases(members)
    actions: list[Action] = []
    notes: list[str] = []
    outcome = Outcome()
    image_problem = image_refusal(spec, observed)
    paused_actions: list[Action] = []
    if spec.paused:
        notes.append("paused: the pool's `paused` item is true; no action is planned")
        # Planned on the side (its notes and outcome dropped): what unpausing would do.
        paused_actions += finish_removals(spec, members, stale_nodes, [])
        paused_actions += converge(spec, members, desired, [], Outcome(), placer)
    elif image_problem is not None:
        # A spec-level problem: nothing this spec would launch can be, so nothing is
        # started that counts on a launch (a replacement, a surge); removals already
        # under way finish.
        notes.append(
            f"{image_problem}; no launch and no new removal is planned until the pool's "
            "`image` names one the daemon offers (see `multipass find`)"
        )
        actions += finish_removals(spec, members, stale_nodes, notes)
    else:
        actions += finish_removals(spec, members, stale_nodes, notes)
        actions += converge(spec, members, desired, notes, outcome, placer)
    actions, waiting = _without_unreadable_hosts(observed, actions, members)
    if waiting:
        notes.append(
            f"waiting on {plural(len(waiting), 'host')} that cannot be read "
            f"({', '.join(waiting)}): their members stay as they are, nothing is launched "
            "or deleted there until their daemons answer"
        )
    # An action already running must not be issued twice; the next pass sees its effect.
    actions = [a for a in actions if a.key not in inflight_keys]
    return Plan(
        pool=spec.pool,
        index=spec.index,
        template_hash=spec.template_hash,
        desired=desired,
        desired_reason=desired_reason,
        actions=tuple(actions),
        members=tuple(members),
        counts=counts,
        notes=tuple(notes),
        paused=spec.paused,
        scaling=scaling,
        blocked=outcome.blocked,
        stalled=outcome.stalled,
        short_circuit=outcome.short_circuit,
        image_problem=image_problem,
        paused_actions=tuple(a for a in paused_actions if a.key not in inflight_keys),
        insufficient_capacity=outcome.insufficient_capacity,
        waiting_on_hosts=tuple(waiting),
        show_hosts=bool(observed.hosts.keys() - {DEFAULT_HOST}),
    )


def _with_displacement(spec: PoolSpec, observed: Observed, members: list[Member]) -> list[Member]:
    """Members marked with why they must move host, if they must (none before hosts)."""
    if not observed.hosts:
        return members
    out = []
    for m in members:
        why = placement.displacement(spec, observed.hosts, m)
        out.append(m if why is None else m._replace(displaced=why))
    return out


def _without_unreadable_hosts(
    observed: Observed, actions: list[Action], members: Sequence[Member]
) -> tuple[list[Action], list[str]]:
    """Actions whose daemon can be read, and the unreadable hosts that hold some back."""
    unreadable = {h for h, state in observed.hosts.items() if not state.reachable}
    waiting = {m.host for m in members if m.frozen}
    kept = []
    for a in actions:
        if a.kind in _NEED_DAEMON and a.host in unreadable:
            waiting.add(a.host)
        else:
            kept.append(a)
    return kept, sorted(waiting)


def image_refusal(spec: PoolSpec, observed: Observed) -> str | None:
    """Why multipassd will not launch the pool's image; None: as far as is known, it will."""
    refused = observed.refused_images.get(spec.image)
    if refused is not None:
        return f"image {spec.image!r}: multipassd refused it ({refused})"
    if observed.images is not None and not observed.images.offers(spec.image):
        return f"image {spec.image!r}: multipassd does not offer it (its `find` does not list it)"
    return None


def desired_count(spec: PoolSpec) -> tuple[int, str]:
    """The pool size to converge to and why. The autoscaling policy plugs in here."""
    if spec.count is not None:
        if spec.count_clamped_from is not None:
            return (
                spec.count,
                f"count {spec.count_clamped_from} clamped to [{spec.min}, {spec.max}]",
            )
        return spec.count, f"count = {spec.count}"
    return spec.min, f"min = {spec.min} (no count set)"


def autoscale(
    spec: PoolSpec,
    policy: Policy,
    members: Sequence[Member],
    world: PoolWorld,
    observed: Observed,
    now: float,
    last: LastScale | None,
) -> Decision:
    """The policy's desired count, from signals over the pool's ready, eligible nodes."""
    ready = [m.node for m in members if m.phase is Phase.READY and m.node is not None]
    signals = pool_signals(
        ready,
        world.allocations,  # the rest are on other pools' nodes: no signal of this one
        observed.blocked,
        node_class=spec.node_class,
        node_pool=spec.node_pool,
        datacenter=spec.datacenter,
        instance_cpus=spec.cpus,
        instance_memory_bytes=spec.memory_bytes,
    )
    serving = sum(1 for m in members if m.phase in SERVING_PHASES and not m.lost)
    return decide(
        policy,
        signals,
        members=serving,
        minimum=spec.min,
        maximum=spec.max,
        now=now,
        last=last,
    )
