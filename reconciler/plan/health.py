"""Health and phases: where each member is in its life, and whether it is unhealthy.

An unhealthy member is one that is not doing its job and will not without help
(it never joined, its node stayed down, its VM stopped), each measured against
the spec's timeouts from the earliest moment the trouble was seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler import ownership
from reconciler.model import BROKEN_STATES, Instance, InstanceState, Node, NodeStatus
from reconciler.plan.model import SERVING_PHASES, Member, Phase
from reconciler.spec import PoolSpec


def phase(
    spec: PoolSpec,
    inst: Instance | None,
    node: Node | None,
    blocking_allocs: bool,
    now: float,
    delete_in_flight: bool,
) -> tuple[Phase, str | None]:
    """The member's phase and, when it is unhealthy, why.

    ``blocking_allocs``: allocations that still keep a drain of its node from being
    done (system jobs aside when the spec says to ignore them).
    """
    if inst is None:
        return Phase.NODE_ONLY, None
    if inst.state is InstanceState.DELETED or delete_in_flight:
        return Phase.DELETING, None
    if node is None:
        age = now - inst.created_at if inst.created_at is not None else 0.0
        if age > spec.join_timeout:
            return Phase.PENDING, f"did not join Nomad within {_dur(spec.join_timeout)}"
        return Phase.PENDING, None
    found = node_phase(spec, inst, node, blocking_allocs, now)
    if found[0] is Phase.READY and inst.state in BROKEN_STATES:
        # Its node still answers (or has not been marked down yet): it serves
        # until the state has lasted unhealthy_timeout, then it is replaced.
        since = inst.broken_since if inst.broken_since is not None else now
        if now - since > spec.unhealthy_timeout:
            return Phase.READY, f"instance {inst.state} for over {_dur(spec.unhealthy_timeout)}"
    return found


def node_phase(
    spec: PoolSpec, inst: Instance | None, node: Node, blocking_allocs: bool, now: float
) -> tuple[Phase, str | None]:
    """The phase as the member's Nomad node shows it (``inst``: its VM, when known)."""
    if node.draining:
        if not is_our_drain(spec, node.drain_meta):
            return Phase.HELD, None
        deadline_at = node.drain_deadline_at
        # Nomad reads a zero deadline as "none": never infer one from it.
        if deadline_at is None and node.drain_started_at is not None and spec.drain_deadline > 0:
            deadline_at = node.drain_started_at + spec.drain_deadline
        past_deadline = deadline_at is not None and now >= deadline_at
        if past_deadline or not blocking_allocs:
            return Phase.DRAINED, None
        return Phase.DRAINING, None
    if not node.eligible:
        drained = node.last_drain_status in ("complete", "draining")
        if drained and is_our_drain(spec, node.drain_meta):
            return Phase.DRAINED, None
        # Ineligible by a person, or a drain of ours that was cancelled: theirs to decide.
        return Phase.HELD, None
    if node.status in (NodeStatus.DOWN, NodeStatus.DISCONNECTED):
        since = node.status_updated_at if node.status_updated_at is not None else now
        if inst is not None and inst.broken_since is not None:
            since = min(since, inst.broken_since)  # the VM stopped before Nomad noticed
        if now - since > spec.unhealthy_timeout:
            return Phase.DOWN, f"node {node.status} for over {_dur(spec.unhealthy_timeout)}"
        return Phase.DOWN, None
    if node.status is NodeStatus.INITIALIZING:
        created = inst.created_at if inst is not None else None
        # From the later of the VM's creation and the node's (re)registration: a node
        # back from down (its host powered on, its client restarted) is initializing
        # again for a moment, and has not failed to join for the VM's whole age.
        if created is not None and node.status_updated_at is not None:
            created = max(created, node.status_updated_at)
        age = now - created if created is not None else 0.0
        if age > spec.join_timeout:
            return Phase.PENDING, f"node not ready within {_dur(spec.join_timeout)}"
        return Phase.PENDING, None
    return Phase.READY, None


def is_our_drain(spec: PoolSpec, meta: Mapping[str, str]) -> bool:
    """A drain this pool started: its Meta names the reconciler and the pool."""
    return (
        meta.get(ownership.DRAIN_META_OWNER) == ownership.DRAIN_META_OWNER_VALUE
        and meta.get(ownership.DRAIN_META_POOL) == spec.pool
    )


# Every phase is counted, zeros included: the counts' keys are the same for every plan.
_PHASE_KEYS = tuple(p.value for p in Phase)


def count_phases(members: Iterable[Member]) -> dict[str, int]:
    """Members per phase, and how many are outdated, unhealthy, protected, lost, displaced.

    One walk of the members: a pass counts every pool, so this is paid per pool.
    """
    counts = dict.fromkeys(_PHASE_KEYS, 0)
    outdated = unhealthy = protected = lost = displaced = total = 0
    for m in members:
        total += 1
        counts[m.phase] += 1  # a StrEnum: the member's phase is its value's key
        outdated += m.outdated and m.phase in SERVING_PHASES
        unhealthy += m.unhealthy is not None
        protected += m.protected
        lost += m.lost  # with a host that is gone
        displaced += m.displaced is not None
    counts["outdated"] = outdated
    counts["unhealthy"] = unhealthy
    counts["protected"] = protected
    counts["lost"] = lost
    counts["displaced"] = displaced
    counts["instances"] = total - counts[Phase.NODE_ONLY]
    return counts


def max_unhealthy_for(spec: PoolSpec, size: int) -> int:
    """How many unhealthy members a pool of ``size`` may remediate at once.

    Percentages round up, unlike Cluster API's MachineHealthCheck: rounded down,
    a 1- or 2-member pool at 40% could never replace its one failed member.
    """
    return spec.max_unhealthy.resolve(size, round_up=True)


def _dur(seconds: float) -> str:
    s = int(seconds)
    if s % 3600 == 0 and s:
        return f"{s // 3600}h"
    if s % 60 == 0 and s:
        return f"{s // 60}m"
    return f"{s}s"
