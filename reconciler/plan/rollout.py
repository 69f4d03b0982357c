"""Converging: launch what is missing, remove what is in excess or to be replaced.

Within the pool's budgets, as a Kubernetes Deployment rolls out: at most
``max_surge`` members above desired while replacing, at most ``max_unavailable``
ready members below it, never more than ``max_unhealthy`` remediated at once,
launches before removals. Members whose host cannot be read are left as they
are (nothing about them can be done without their daemon); members lost with
their host are replaced without counting toward ``max_unhealthy``: losing a host
is not the broken template the short-circuit exists for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler import ownership
from reconciler.plan import placement
from reconciler.plan.health import max_unhealthy_for
from reconciler.plan.model import SERVING_PHASES, Action, ActionKind, Member, Phase
from reconciler.plan.removals import removal
from reconciler.plan.scale_in import order_for_replacement, order_for_scale_in
from reconciler.spec import PoolSpec
from reconciler.units import plural

# The hosts of ``count`` new members and, when fewer fit, why (placement.place, bound).
Placer = Callable[[int, Sequence[Member]], tuple[list[str], str | None]]


@dataclass(slots=True)
class Outcome:
    """What converging found that the plan reports besides actions."""

    blocked: tuple[str, ...] = ()
    stalled: str | None = None
    short_circuit: str | None = None
    insufficient_capacity: str | None = None


@dataclass(slots=True)
class _Budget:
    """What converging may still spend this pass."""

    serving: int
    available: int
    total: int
    launched: int = 0


def converge(
    spec: PoolSpec,
    members: list[Member],
    desired: int,
    notes: list[str],
    outcome: Outcome,
    placer: Placer,
) -> list[Action]:
    serving: list[Member] = []
    unhealthy: list[Member] = []
    available = total = current_available = outdated_joined = 0
    for m in members:
        # Lost with their host: neither serving nor taking room the pool can use.
        if m.phase is Phase.NODE_ONLY or m.lost:
            continue
        total += 1
        if m.phase in SERVING_PHASES:
            serving.append(m)
            if m.phase is Phase.READY:
                available += 1
                current_available += not m.outdated
            outdated_joined += m.outdated and m.node is not None
            if m.unhealthy is not None:
                unhealthy.append(m)
    limit = max_unhealthy_for(spec, max(len(serving), desired))
    short_circuited = len(unhealthy) > limit
    if short_circuited:
        outcome.short_circuit = (
            f"remediation short-circuited: {plural(len(unhealthy), 'unhealthy member')} exceed "
            f"max_unhealthy ({limit}); fix the cause (network, template) before they are replaced"
        )
        notes.append(outcome.short_circuit)
    stalled = stalled_by(unhealthy, current_available, outdated_joined)
    if stalled is not None:
        outcome.stalled = stalled.name
        notes.append(
            f"rollout stalled: {stalled.name} of the current spec {stalled.unhealthy} and no "
            "member of the current spec is ready; no outdated member is replaced until the "
            f"spec is fixed, or {stalled.name} is deleted to retry"
        )

    replaceable: list[Member] = []
    protected: list[str] = []
    held: list[str] = []
    for m in serving:
        if not m.to_replace or m.frozen:
            continue  # frozen: its daemon is needed to replace it, and cannot be read
        # Protected and held members are never replaced (Karpenter's do-not-disrupt):
        # they count toward desired as they are, or a replacement would be launched
        # only to be scaled in again, forever.
        if m.protected:
            protected.append(m.name)
        elif m.phase is Phase.HELD:
            held.append(m.name)
        elif stalled is not None:
            continue
        elif short_circuited:
            # Only a member that never joined can be removed without remediating:
            # nothing runs there (a template fixed after it broke every VM).
            if m.outdated and m.node is None:
                replaceable.append(m)
        else:
            replaceable.append(m)
    outcome.blocked = (*protected, *held)
    if protected:
        notes.append(f"protected members block replacement: {', '.join(protected)}")
    if held:
        notes.append(
            "held members (drained or ineligible by someone else) block replacement: "
            + ", ".join(held)
        )
    surge = spec.max_surge.resolve(desired, round_up=True)
    unavailable = spec.max_unavailable.resolve(desired, round_up=False)
    if surge == 0 and unavailable == 0:
        surge = 1  # as Kubernetes: a rollout must be able to make progress

    if stalled is not None:
        return []  # launching would only build another VM that cannot join
    budget = _Budget(serving=len(serving), available=available, total=total)
    actions = _launches(
        spec, members, serving, replaceable, desired, surge, budget, placer, outcome
    )
    # Under the short-circuit nothing with a node is removed, not even to scale in:
    # the cause (a network split, say) may be hiding serving members.
    scale_in = not short_circuited
    actions += _removals(
        spec, serving, replaceable, desired, surge, unavailable, budget, notes, scale_in
    )
    if outcome.insufficient_capacity is not None:
        notes.append(outcome.insufficient_capacity)
    return actions


def stalled_by(
    unhealthy: list[Member], current_available: int, outdated_joined: int
) -> Member | None:
    """The current-generation member that shows the new spec cannot work, if any.

    As a Kubernetes Deployment whose new ReplicaSet never becomes available: while
    outdated members that joined Nomad remain and no member of the current spec is
    ready, one of the current spec that never joined stops the rollout. Replacing it
    would build the same VM again, and removing outdated members would trade
    working capacity for broken. A fresh pool, or one whose outdated members never
    joined either (nothing known to work), remediates as usual.
    """
    if current_available or not outdated_joined:
        return None
    for m in unhealthy:
        if not m.outdated and m.phase is Phase.PENDING:
            return m
    return None


def _launches(
    spec: PoolSpec,
    members: list[Member],
    serving: list[Member],
    replaceable: list[Member],
    desired: int,
    surge: int,
    budget: _Budget,
    placer: Placer,
    outcome: Outcome,
) -> list[Action]:
    current = len(serving) - len(replaceable)  # replaceable members are serving ones
    needed = desired - current
    replacing = bool(replaceable)
    # Hard ceiling on VMs that exist at once, draining ones included: the host's
    # capacity guard. The soft one keeps serving members at desired (+ surge while
    # replacing).
    hard_room = (desired + surge if replacing else spec.max) - budget.total
    soft_room = desired + (surge if replacing else 0) - budget.serving
    n = max(0, min(needed, hard_room, soft_room))
    if n == 0:
        return []
    hosts, outcome.insufficient_capacity = placer(n, members)
    # Ordinals are the lowest free per host: a relaunch after a crash takes the same
    # name on the same host, and the daemon answers "already exists".
    used = {
        (ownership.host_of_name(m.name), m.ordinal)
        for m in members
        if m.template_hash == spec.template_hash
    }
    actions: list[Action] = []
    for host in hosts:
        ordinal = 0
        while (host, ordinal) in used:
            ordinal += 1
        used.add((host, ordinal))
        name = ownership.instance_name(spec.pool, spec.template_hash, ordinal, host)
        if budget.serving + len(actions) < desired:
            reason = f"scale up: {budget.serving + len(actions)} of {plural(desired, 'member')}"
        else:
            reason = f"surge: replacing {len(replaceable)} outdated or unhealthy members"
        actions.append(Action(ActionKind.LAUNCH, name, reason, host=host))
    budget.launched = len(actions)
    budget.serving += len(actions)
    budget.total += len(actions)
    return actions


def _removals(
    spec: PoolSpec,
    serving: list[Member],
    replaceable: list[Member],
    desired: int,
    surge: int,
    unavailable: int,
    budget: _Budget,
    notes: list[str],
    scale_in: bool = True,
) -> list[Action]:
    """Members to replace within the budget, then any excess if ``scale_in``."""
    min_available = max(0, desired - unavailable)
    replaceable_names = {m.name for m in replaceable}
    unhealthy_first: list[Member] = []
    old: list[Member] = []
    not_joined: list[Member] = []
    ready: list[Member] = []
    for m in serving:  # one pass: sorts each candidate into the list it is removed from
        if m.protected or m.phase is Phase.HELD or m.frozen:
            continue
        if replaceable_names and m.name in replaceable_names:
            (unhealthy_first if m.unhealthy else old).append(m)
        elif m.phase is Phase.READY:
            ready.append(m)
        else:
            not_joined.append(m)
    outdated = order_for_replacement(spec.scale_in, old) if old else []
    # Scale-in never removes more than the excess, so only that many need ordering.
    most = max(0, budget.serving - desired) if scale_in else 0
    spans_hosts = len({m.host for m in ready}) > 1
    if most and not spans_hosts:
        excess_pool = order_for_scale_in(spec.scale_in, ready, limit=most)
    else:
        excess_pool = order_for_scale_in(spec.scale_in, ready) if most else []

    actions: list[Action] = []
    # Members that a replacement will take out anyway: they absorb any excess
    # before a healthy, current member is scaled in.
    to_replace = {m.name for m in unhealthy_first} | {m.name for m in outdated}

    def remove(m: Member, reason: str) -> None:
        actions.append(removal(spec, m, reason))
        budget.serving -= 1
        to_replace.discard(m.name)
        if m.phase is Phase.READY:
            budget.available -= 1

    def excess() -> int:
        return budget.serving - len(to_replace) - desired

    for m in unhealthy_first:
        # Launch first, then remove: only once a replacement exists (was launched
        # in an earlier pass), unless the budget allows no surge at all.
        if budget.serving - budget.launched - 1 >= desired or surge == 0:
            remove(m, f"unhealthy: {m.unhealthy}")
    for m in not_joined if scale_in else ():
        if excess() > 0:
            members = plural(budget.serving, "member")
            remove(m, f"scale down: {members}, {desired} desired (not yet joined)")
    for m in outdated:
        why = _replacement_reason(spec, m)
        if m.node is None:
            # Never joined: nothing can run there, nothing to pace.
            remove(m, f"{why}, never joined" if m.displaced else _NEVER_JOINED)
            continue
        # A down or disconnected client may still run its allocations (a network
        # split): it is paced as if it were ready, but the ready count does not
        # include it, so the ready members without it must already meet the floor.
        ready_left = budget.available - (m.phase is Phase.READY)
        if ready_left >= min_available and budget.serving - 1 >= min_available:
            remove(m, why)
    if spans_hosts and excess_pool:
        # Which hosts lose members decides where the pool stays (spread or pack).
        gone = {a.instance for a in actions} | to_replace
        staying = [m for m in serving if m.name not in gone]
        excess_pool = placement.scale_in_order(spec, excess_pool, staying, limit=most)
    for m in excess_pool:
        if excess() <= 0:
            break
        if budget.available - 1 < min_available:
            break  # never shrink the ready count below desired - max_unavailable
        remove(
            m,
            f"scale down: {plural(budget.serving, 'member')}, {desired} desired ({spec.scale_in})",
        )
    if budget.serving > desired and not replaceable and scale_in:
        over = budget.serving - desired
        notes.append(
            f"{plural(over, 'more member')} {'is' if over == 1 else 'are'} above desired but "
            "none can be "
            f"removed now (scale_in {spec.scale_in}, protected or held members)"
        )
    return actions


_NEVER_JOINED = "outdated: built from an older spec, never joined"


def _replacement_reason(spec: PoolSpec, m: Member) -> str:
    if m.outdated:
        return f"outdated: template hash {m.template_hash} != {spec.template_hash}"
    return f"moved: {m.displaced}"
