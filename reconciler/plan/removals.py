"""Finishing what is under way: drained members are deleted, leftover nodes purged.

Each step here continues a removal an earlier pass started (or a person did, for
a VM deleted by hand): nothing new is chosen, so no budget is spent.
"""

from __future__ import annotations

from reconciler import ownership
from reconciler.model import Node, NodeStatus
from reconciler.plan.health import is_our_drain
from reconciler.plan.model import Action, ActionKind, Member, Phase
from reconciler.spec import PoolSpec


def finish_removals(
    spec: PoolSpec, members: list[Member], stale_nodes: list[Node], notes: list[str]
) -> list[Action]:
    actions: list[Action] = []
    for m in members:
        if m.phase is Phase.READY:
            continue  # the common case: nothing under way
        if m.phase is Phase.DELETING and m.instance is not None:
            actions.append(delete(m, "instance is deleted but not purged"))
        elif m.phase is Phase.DRAINED:
            if m.protected:
                notes.append(
                    f"{m.name}: drained but protected ({ownership.META_PROTECT}); not deleted"
                )
                continue
            why = "drain complete" if not (m.node and m.node.draining) else "drain deadline passed"
            actions.append(delete(m, why))
        elif m.phase is Phase.NODE_ONLY and m.node is not None and spec.node_purge:
            node = m.node
            ours_drained = is_our_drain(spec, node.drain_meta) and not node.eligible
            if node.status in (NodeStatus.DOWN, NodeStatus.DISCONNECTED) or ours_drained:
                _purge(spec, m.host, node, f"instance gone, node {node.status}", actions, notes)
    if spec.node_purge:
        for node in stale_nodes:
            if node.status is NodeStatus.DOWN:
                why = "stale node record: a newer node has the same name"
                host = ownership.host_of_name(node.name) or ownership.DEFAULT_HOST
                _purge(spec, host, node, why, actions, notes)
    return actions


def _purge(
    spec: PoolSpec, host: str, node: Node, reason: str, actions: list[Action], notes: list[str]
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
    actions.append(Action(ActionKind.PURGE_NODE, node.name, reason, node_id=node.id, host=host))


def delete(m: Member, reason: str) -> Action:
    return Action(
        ActionKind.DELETE,
        m.name,
        reason,
        node_id=m.node.id if m.node else None,
        allocations=m.live_allocations,
        host=m.host,
    )


def removal(spec: PoolSpec, m: Member, reason: str) -> Action:
    """Drain a member whose node can be drained, else delete it."""
    node = m.node
    if node is not None and node.status in (NodeStatus.READY, NodeStatus.INITIALIZING):
        return Action(
            ActionKind.DRAIN,
            m.name,
            reason,
            node_id=node.id,
            allocations=m.live_allocations,
            deadline_s=spec.drain_deadline,
            host=m.host,
        )
    # No node to drain (never joined, or down): nothing can be migrated off it.
    return delete(m, reason)


def drain_meta(spec: PoolSpec, reason: str) -> dict[str, str]:
    """The Meta every drain we start carries: how we recognise it after a restart."""
    return {
        ownership.DRAIN_META_OWNER: ownership.DRAIN_META_OWNER_VALUE,
        ownership.DRAIN_META_POOL: spec.pool,
        ownership.DRAIN_META_REASON: reason[:200],
    }
