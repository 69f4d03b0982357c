"""The planner: ``plan(spec, observed, now, inflight) -> Plan``.

Pure: no I/O, no clock reads, no randomness. Everything it needs arrives as
arguments, so the same inputs always give the same plan and Hypothesis can
explore it over generated worlds.

It works in three steps, as a Kubernetes controller does:

1. *join*: instances and nodes of this pool become members, each in one phase;
2. *finish what is under way*: drained members are deleted, orphan nodes purged;
3. *converge*: launch what is missing, drain what is in excess or to be
   replaced, within the surge / unavailable budget.

Nothing that is not provably ours becomes a member, so nothing else is touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from reconciler import ownership
from reconciler.model import BROKEN_STATES, Allocation, Instance, InstanceState, Node, NodeStatus
from reconciler.model import Observed as Observed
from reconciler.scale_in import order_for_replacement, order_for_scale_in
from reconciler.scaling.decide import Decision, LastScale, decide
from reconciler.scaling.policy import Policy
from reconciler.scaling.signals import pool_signals
from reconciler.spec import PoolSpec
from reconciler.units import plural


class ActionKind(StrEnum):
    LAUNCH = "launch"
    DRAIN = "drain"
    DELETE = "delete"
    PURGE_NODE = "purge-node"


@dataclass(frozen=True, slots=True)
class Action:
    """One idempotent step. ``instance`` is also the Nomad node's name."""

    kind: ActionKind
    instance: str
    reason: str
    node_id: str | None = None
    allocations: int = 0
    deadline_s: float | None = None
    # The host a launch goes to or a delete is sent to (drains and purges: the member's).
    host: str = ownership.DEFAULT_HOST

    @property
    def key(self) -> tuple[str, str]:
        """Identity for in-flight tracking: one action per kind and target at a time."""
        if self.kind is ActionKind.PURGE_NODE and self.node_id is not None:
            return (self.kind.value, self.node_id)
        return (self.kind.value, self.instance)


class Phase(StrEnum):
    PENDING = "pending"  # launched, not (yet) a ready node
    READY = "ready"  # node ready and eligible: serves work
    DOWN = "down"  # node down or disconnected, not yet unhealthy
    HELD = "held"  # ineligible or drained by someone else: never touched
    DRAINING = "draining"  # our drain in progress
    DRAINED = "drained"  # our drain complete or past its deadline: delete next
    DELETING = "deleting"  # instance deleted but not purged, or delete in flight
    NODE_ONLY = "node-only"  # instance gone, node still registered


SERVING_PHASES = frozenset({Phase.PENDING, Phase.READY, Phase.DOWN, Phase.HELD})


class Member(NamedTuple):
    """One instance/node pair of the pool, built afresh on every pass."""

    name: str
    template_hash: str
    ordinal: int
    phase: Phase
    instance: Instance | None
    node: Node | None
    outdated: bool
    protected: bool
    live_allocations: int = 0
    non_system_allocations: int = 0
    load: float = 0.0
    unhealthy: str | None = None  # why, when it is

    @property
    def created_at(self) -> float | None:
        return self.instance.created_at if self.instance else None


@dataclass(frozen=True)
class Plan:
    pool: str
    index: int
    template_hash: str
    desired: int
    desired_reason: str
    actions: tuple[Action, ...]
    members: tuple[Member, ...]
    counts: Mapping[str, int]
    notes: tuple[str, ...] = ()
    paused: bool = False
    scaling: Decision | None = None  # the policy's decision, for pools with a policy
    # Protected or held members that are outdated or unhealthy: never replaced, so
    # the rollout cannot finish while they stay as they are.
    blocked: tuple[str, ...] = ()
    # The current-generation instance that never joined while a rollout was under
    # way: the rollout waits for a person (see _stalled_by).
    stalled: str | None = None
    # Why remediation is short-circuited (more unhealthy than max_unhealthy); None: it is not.
    short_circuit: str | None = None
    # Why the daemon will not launch the pool's image (a spec problem); None: it will.
    image_problem: str | None = None
    # A paused pool: what it would do if it were not (shown, never executed).
    paused_actions: tuple[Action, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)


@dataclass(slots=True)
class _Budget:
    """What converging may still spend this pass."""

    serving: int
    available: int
    total: int
    launched: int = 0


@dataclass(slots=True)
class _Outcome:
    """What converging found that the plan reports besides actions."""

    blocked: tuple[str, ...] = ()
    stalled: str | None = None
    short_circuit: str | None = None


@dataclass(slots=True)
class _Usage:
    """What live allocations hold on one node."""

    count: int = 0
    non_system: int = 0
    cpu_mhz: int = 0
    memory_mb: int = 0

    def add(self, alloc: Allocation) -> None:
        self.count += 1
        self.non_system += alloc.job_type != "system"
        self.cpu_mhz += alloc.cpu_mhz
        self.memory_mb += alloc.memory_mb


_NO_USAGE = _Usage()


@dataclass(frozen=True, slots=True)
class PoolWorld:
    """The part of the observed world named as one pool's: what its plan reads.

    ``nodes`` leaves out nodes whose client meta names another pool; ``allocations``
    are the live ones on ``nodes``.
    """

    instances: tuple[Instance, ...] = ()
    nodes: tuple[Node, ...] = ()
    allocations: tuple[Allocation, ...] = ()


def group_by_pool(observed: Observed) -> dict[str, PoolWorld]:
    """Each pool's instances, nodes and live allocations, in one walk of the world.

    A pass plans every pool against the same world: grouped once, each plan
    costs its own pool's size, and a pass costs the world plus the pools rather
    than the world once per pool.
    """
    instances: dict[str, list[Instance]] = {}
    for inst in observed.instances:
        pool = _pool_of(inst.name)
        if pool is not None:
            instances.setdefault(pool, []).append(inst)
    nodes: dict[str, list[Node]] = {}
    node_pools: dict[str, str] = {}
    for node in observed.nodes:
        pool = _pool_of(node.name)
        # A full read's meta naming another pool vetoes the name (see is_our_node).
        if pool is not None and node.meta.get(ownership.META_POOL, pool) == pool:
            nodes.setdefault(pool, []).append(node)
            node_pools[node.id] = pool
    allocations: dict[str, list[Allocation]] = {}
    for alloc in observed.allocations:
        pool = node_pools.get(alloc.node_id)
        if pool is not None and alloc.is_live:
            allocations.setdefault(pool, []).append(alloc)
    return {
        pool: PoolWorld(
            tuple(instances.get(pool, ())),
            tuple(nodes.get(pool, ())),
            tuple(allocations.get(pool, ())),
        )
        for pool in instances.keys() | nodes.keys()
    }


def _pool_of(name: str) -> str | None:
    parsed = ownership.parse_instance_name(name)  # memoized: the same names come back
    return parsed[0] if parsed is not None else None


def plan(
    spec: PoolSpec,
    observed: Observed,
    now: float,
    inflight: Iterable[tuple[str, str]] = (),
    last_scale: LastScale | None = None,
    world: PoolWorld | None = None,
) -> Plan:
    """Diff the pool's desired state against the observed world.

    ``last_scale``: the last autoscaling decision (from the status variable), for
    the policy's cooldowns; ignored for pools without a policy. ``world``: the
    pool's part of ``observed`` when the caller grouped it (``group_by_pool``)
    for several plans; found here otherwise.
    """
    if world is None:
        world = group_by_pool(observed).get(spec.pool, PoolWorld())
    inflight_keys = frozenset(inflight)
    members, stale_nodes = join(spec, observed, now, inflight_keys, world)
    scaling = None
    if spec.policy is not None:
        scaling = autoscale(spec, spec.policy, members, world, observed, now, last_scale)
        desired, desired_reason = scaling.count, scaling.reason
    else:
        desired, desired_reason = desired_count(spec)
    counts = count_phases(members)
    actions: list[Action] = []
    notes: list[str] = []
    outcome = _Outcome()
    image_problem = image_refusal(spec, observed)
    paused_actions: list[Action] = []
    if spec.paused:
        notes.append("paused: the pool's `paused` item is true; no action is planned")
        # Planned on the side (its notes and outcome dropped): what unpausing would do.
        paused_actions += _finish_removals(spec, members, stale_nodes, [])
        paused_actions += _converge(spec, members, desired, [], _Outcome())
    elif image_problem is not None:
        # A spec-level problem: nothing this spec would launch can be, so nothing is
        # started that counts on a launch (a replacement, a surge); removals already
        # under way finish.
        notes.append(
            f"{image_problem}; no launch and no new removal is planned until the pool's "
            "`image` names one the daemon offers (see `multipass find`)"
        )
        actions += _finish_removals(spec, members, stale_nodes, notes)
        actions = [a for a in actions if a.key not in inflight_keys]
    else:
        actions += _finish_removals(spec, members, stale_nodes, notes)
        actions += _converge(spec, members, desired, notes, outcome)
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
    )


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
    serving = sum(1 for m in members if m.phase in SERVING_PHASES)
    return decide(
        policy,
        signals,
        members=serving,
        minimum=spec.min,
        maximum=spec.max,
        now=now,
        last=last,
    )


# ---------------------------------------------------------------- join


def is_our_node(spec: PoolSpec, node: Node) -> bool:
    """Ours: named as one of our instances, and no client meta saying otherwise.

    Node list stubs carry no meta (Nomad's list endpoint leaves it out), so the
    name is the mark: ``<pool>-<5-char hash>-<ordinal>``, the hash from an
    alphabet people do not type. When the meta is known (a full node read), a
    pool meta naming another pool vetoes.
    """
    parsed = ownership.parse_instance_name(node.name)
    if parsed is None or parsed[0] != spec.pool:
        return False
    pool_meta = node.meta.get(ownership.META_POOL)
    return pool_meta is None or pool_meta == spec.pool


def is_our_drain(spec: PoolSpec, meta: Mapping[str, str]) -> bool:
    return (
        meta.get(ownership.DRAIN_META_OWNER) == ownership.DRAIN_META_OWNER_VALUE
        and meta.get(ownership.DRAIN_META_POOL) == spec.pool
    )


def join(
    spec: PoolSpec,
    observed: Observed,
    now: float,
    inflight: frozenset[tuple[str, str]] = frozenset(),
    world: PoolWorld | None = None,
) -> tuple[list[Member], list[Node]]:
    """Members of this pool, sorted by name, and stale duplicate nodes to purge.

    ``world``: the pool's part of ``observed`` (``group_by_pool``), if grouped already.
    """
    if world is None:
        world = group_by_pool(observed).get(spec.pool, PoolWorld())
    instances = {inst.name: inst for inst in world.instances}
    nodes, stale = _newest_nodes(world.nodes)
    usage: dict[str, _Usage] = {}
    for alloc in world.allocations:
        usage.setdefault(alloc.node_id, _Usage()).add(alloc)
    deleting = {name for kind, name in inflight if kind == ActionKind.DELETE.value}
    members = []
    for name in sorted(instances.keys() | nodes.keys()):
        node = nodes.get(name)
        live = usage.get(node.id, _NO_USAGE) if node is not None else _NO_USAGE
        members.append(_member(spec, name, instances.get(name), node, live, now, name in deleting))
    # Launches in flight are members too: a relaunch must not pick their names
    # and the count must include them, or a slow launch would be doubled.
    known = {m.name for m in members}
    for kind, name in sorted(inflight):
        if kind != ActionKind.LAUNCH.value or name in known:
            continue
        parsed = ownership.parse_instance_name(name)
        if parsed is None or parsed[0] != spec.pool:
            continue
        members.append(
            Member(
                name=name,
                template_hash=parsed[1],
                ordinal=parsed[2],
                phase=Phase.PENDING,
                instance=None,
                node=None,
                outdated=parsed[1] != spec.template_hash,
                protected=False,
            )
        )
    return members, stale


def _newest_nodes(nodes: Iterable[Node]) -> tuple[dict[str, Node], list[Node]]:
    """The newest node of each name, and the older ones of a name seen twice.

    Nomad can hold several nodes of one name (a VM re-registered after a purge,
    say): the newest is the member's node, older down ones are stale.
    """
    newest: dict[str, Node] = {}
    stale: list[Node] = []
    for node in nodes:
        other = newest.get(node.name)
        if other is None:
            newest[node.name] = node
            continue
        newer, older = (node, other) if node.create_index > other.create_index else (other, node)
        newest[node.name] = newer
        stale.append(older)
    return newest, stale


def _member(
    spec: PoolSpec,
    name: str,
    inst: Instance | None,
    node: Node | None,
    live: _Usage,
    now: float,
    deleting: bool,
) -> Member:
    parsed = ownership.parse_instance_name(name)
    assert parsed is not None  # grouped by this very parse
    _, template_hash, ordinal = parsed
    phase, unhealthy = _phase(spec, inst, node, live, now, deleting)
    return Member(
        name=name,
        template_hash=template_hash,
        ordinal=ordinal,
        phase=phase,
        instance=inst,
        node=node,
        outdated=template_hash != spec.template_hash,
        protected=node is not None and node.meta.get(ownership.META_PROTECT) == "true",
        live_allocations=live.count,
        non_system_allocations=live.non_system,
        load=_load(node, live),
        unhealthy=unhealthy,
    )


def _load(node: Node | None, live: _Usage) -> float:
    """Allocated share of the node, CPU and memory averaged (least_busy's key)."""
    if node is None or not live.count:
        return 0.0
    cpu = live.cpu_mhz / node.cpu_mhz if node.cpu_mhz else 0.0
    memory = live.memory_mb / node.memory_mb if node.memory_mb else 0.0
    return (cpu + memory) / 2


def _phase(
    spec: PoolSpec,
    inst: Instance | None,
    node: Node | None,
    live: _Usage,
    now: float,
    delete_in_flight: bool,
) -> tuple[Phase, str | None]:
    if inst is None:
        return Phase.NODE_ONLY, None
    if inst.state is InstanceState.DELETED or delete_in_flight:
        return Phase.DELETING, None
    if node is None:
        age = now - inst.created_at if inst.created_at is not None else 0.0
        if age > spec.join_timeout:
            return Phase.PENDING, f"did not join Nomad within {_dur(spec.join_timeout)}"
        return Phase.PENDING, None

    drain_ours = is_our_drain(spec, node.drain_meta)
    if node.draining:
        if not drain_ours:
            return Phase.HELD, None
        deadline_at = node.drain_deadline_at
        # Nomad reads a zero deadline as "none": never infer one from it.
        if deadline_at is None and node.drain_started_at is not None and spec.drain_deadline > 0:
            deadline_at = node.drain_started_at + spec.drain_deadline
        past_deadline = deadline_at is not None and now >= deadline_at
        if past_deadline or not _blocking_allocs(spec, live):
            return Phase.DRAINED, None
        return Phase.DRAINING, None
    if not node.eligible:
        if drain_ours and node.last_drain_status in ("complete", "draining"):
            return Phase.DRAINED, None
        # Ineligible by a person, or a drain of ours that was cancelled: theirs to decide.
        return Phase.HELD, None
    if node.status in (NodeStatus.DOWN, NodeStatus.DISCONNECTED):
        since = node.status_updated_at if node.status_updated_at is not None else now
        if inst.broken_since is not None:  # the VM stopped before Nomad noticed
            since = min(since, inst.broken_since)
        if now - since > spec.unhealthy_timeout:
            return Phase.DOWN, f"node {node.status} for over {_dur(spec.unhealthy_timeout)}"
        return Phase.DOWN, None
    if node.status is NodeStatus.INITIALIZING:
        age = now - inst.created_at if inst.created_at is not None else 0.0
        if age > spec.join_timeout:
            return Phase.PENDING, f"node not ready within {_dur(spec.join_timeout)}"
        return Phase.PENDING, None
    if inst.state in BROKEN_STATES:
        # Its node still answers (or has not been marked down yet): it serves
        # until the state has lasted unhealthy_timeout, then it is replaced.
        since = inst.broken_since if inst.broken_since is not None else now
        if now - since > spec.unhealthy_timeout:
            return Phase.READY, f"instance {inst.state} for over {_dur(spec.unhealthy_timeout)}"
    return Phase.READY, None


def _blocking_allocs(spec: PoolSpec, live: _Usage) -> bool:
    """Does any allocation still keep the drain from being done?"""
    return bool(live.non_system if spec.drain_ignore_system_jobs else live.count)


def count_phases(members: Iterable[Member]) -> dict[str, int]:
    members = list(members)
    by_phase = Counter(m.phase for m in members)
    counts = {p.value: by_phase.get(p, 0) for p in Phase}
    counts["outdated"] = sum(1 for m in members if m.outdated and m.phase in SERVING_PHASES)
    counts["unhealthy"] = sum(1 for m in members if m.unhealthy is not None)
    counts["protected"] = sum(1 for m in members if m.protected)
    counts["instances"] = len(members) - by_phase.get(Phase.NODE_ONLY, 0)
    return counts


# ---------------------------------------------------------------- finish removals


def _finish_removals(
    spec: PoolSpec, members: list[Member], stale_nodes: list[Node], notes: list[str]
) -> list[Action]:
    actions: list[Action] = []
    for m in members:
        if m.phase is Phase.READY:
            continue  # the common case: nothing under way
        if m.phase is Phase.DELETING and m.instance is not None:
            actions.append(_delete(m, "instance is deleted but not purged"))
        elif m.phase is Phase.DRAINED:
            if m.protected:
                notes.append(
                    f"{m.name}: drained but protected ({ownership.META_PROTECT}); not deleted"
                )
                continue
            why = "drain complete" if not (m.node and m.node.draining) else "drain deadline passed"
            actions.append(_delete(m, why))
        elif m.phase is Phase.NODE_ONLY and m.node is not None and spec.node_purge:
            node = m.node
            ours_drained = is_our_drain(spec, node.drain_meta) and not node.eligible
            if node.status in (NodeStatus.DOWN, NodeStatus.DISCONNECTED) or ours_drained:
                _purge(spec, node, f"instance gone, node {node.status}", actions, notes)
    if spec.node_purge:
        for node in stale_nodes:
            if node.status is NodeStatus.DOWN:
                why = "stale node record: a newer node has the same name"
                _purge(spec, node, why, actions, notes)
    return actions


def _purge(
    spec: PoolSpec, node: Node, reason: str, actions: list[Action], notes: list[str]
) -> None:
    """Purge a node record only on the proof a drain or delete needs: our pool meta.

    With no instance left, the name is all a list entry shows, and anyone can
    register a node under a name of our shape. A purge planned on a list entry
    makes the controller read the node in full and plan again (purges are
    disruptive there, held back while unread); the full read must name our pool.
    """
    if node.detailed and node.meta.get(ownership.META_POOL) != spec.pool:
        notes.append(
            f"node {node.name} ({node.id}) is not purged: its meta carries no "
            f"{ownership.META_POOL}={spec.pool}"
        )
        return
    actions.append(Action(ActionKind.PURGE_NODE, node.name, reason, node_id=node.id))


def _delete(m: Member, reason: str) -> Action:
    return Action(
        ActionKind.DELETE,
        m.name,
        reason,
        node_id=m.node.id if m.node else None,
        allocations=m.live_allocations,
    )


# ---------------------------------------------------------------- converge


def max_unhealthy_for(spec: PoolSpec, size: int) -> int:
    """How many unhealthy members a pool of ``size`` may remediate at once.

    Percentages round up, unlike Cluster API's MachineHealthCheck: rounded down,
    a 1- or 2-member pool at 40% could never replace its one failed member.
    """
    return spec.max_unhealthy.resolve(size, round_up=True)


def _converge(
    spec: PoolSpec,
    members: list[Member],
    desired: int,
    notes: list[str],
    outcome: _Outcome,
) -> list[Action]:
    # One pass over the members for everything counted below (10,000 members: each
    # extra pass costs about a millisecond).
    serving: list[Member] = []
    unhealthy: list[Member] = []
    available = total = current_available = outdated_joined = 0
    for m in members:
        phase = m.phase
        if phase is Phase.NODE_ONLY:
            continue
        total += 1
        if phase in SERVING_PHASES:
            serving.append(m)
            if phase is Phase.READY:
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
    stalled = _stalled_by(unhealthy, current_available, outdated_joined)
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
        if m.unhealthy is None and not m.outdated:
            continue
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
    actions = _launches(spec, members, serving, replaceable, desired, surge, budget)
    # Under the short-circuit nothing with a node is removed, not even to scale in:
    # the cause (a network split, say) may be hiding serving members.
    scale_in = not short_circuited
    actions += _removals(
        spec, serving, replaceable, desired, surge, unavailable, budget, notes, scale_in
    )
    return actions


def _stalled_by(
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
    used = {m.ordinal for m in members if m.template_hash == spec.template_hash}
    actions: list[Action] = []
    ordinal = 0
    while len(actions) < n:
        if ordinal not in used:
            name = ownership.instance_name(spec.pool, spec.template_hash, ordinal)
            if budget.serving + len(actions) < desired:
                reason = f"scale up: {budget.serving + len(actions)} of {desired} members"
            else:
                reason = f"surge: replacing {len(replaceable)} outdated or unhealthy members"
            actions.append(Action(ActionKind.LAUNCH, name, reason))
        ordinal += 1
    budget.launched = n
    budget.serving += n
    budget.total += n
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
    """Unhealthy and outdated members within the budget, then any excess if ``scale_in``."""
    min_available = max(0, desired - unavailable)
    replaceable_names = {m.name for m in replaceable}
    unhealthy_first: list[Member] = []
    old: list[Member] = []
    not_joined: list[Member] = []
    ready: list[Member] = []
    for m in serving:  # one pass: sorts each candidate into the list it is removed from
        if m.protected or m.phase is Phase.HELD:
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
    excess_pool = order_for_scale_in(spec.scale_in, ready, limit=most) if most else []

    actions: list[Action] = []
    # Members that a replacement will take out anyway: they absorb any excess
    # before a healthy, current member is scaled in.
    to_replace = {m.name for m in unhealthy_first} | {m.name for m in outdated}

    def remove(m: Member, reason: str) -> None:
        actions.append(_removal_action(spec, m, reason))
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
        if m.node is None:
            # Never joined: nothing can run there, nothing to pace.
            remove(m, "outdated: built from an older spec, never joined")
            continue
        # A down or disconnected client may still run its allocations (a network
        # split): it is paced as if it were ready, but the ready count does not
        # include it, so the ready members without it must already meet the floor.
        ready_left = budget.available - (m.phase is Phase.READY)
        if ready_left >= min_available and budget.serving - 1 >= min_available:
            remove(m, f"outdated: template hash {m.template_hash} != {spec.template_hash}")
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


def _removal_action(spec: PoolSpec, m: Member, reason: str) -> Action:
    node = m.node
    if node is not None and node.status in (NodeStatus.READY, NodeStatus.INITIALIZING):
        return Action(
            ActionKind.DRAIN,
            m.name,
            reason,
            node_id=node.id,
            allocations=m.live_allocations,
            deadline_s=spec.drain_deadline,
        )
    # No node to drain (never joined, or down): nothing can be migrated off it.
    return _delete(m, reason)


def drain_meta(spec: PoolSpec, reason: str) -> dict[str, str]:
    """The Meta every drain we start carries: how we recognise it after a restart."""
    return {
        ownership.DRAIN_META_OWNER: ownership.DRAIN_META_OWNER_VALUE,
        ownership.DRAIN_META_POOL: spec.pool,
        ownership.DRAIN_META_REASON: reason[:200],
    }


def _dur(seconds: float) -> str:
    s = int(seconds)
    if s % 3600 == 0 and s:
        return f"{s // 3600}h"
    if s % 60 == 0 and s:
        return f"{s // 60}m"
    return f"{s}s"
