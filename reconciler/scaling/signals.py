"""The metrics a policy's checks read, computed from the observed world.

``percentage-allocated_cpu`` / ``_memory`` follow the Nomad Autoscaler's nomad-apm
source: the sum of what live allocations reserve over the sum of what the nodes
offer, times 100, over the pool's ready and eligible nodes only (a draining or
booting node neither offers nor holds capacity that scheduling can use).

``blocked_evaluations`` is the number of new instances of this pool's size that
would place everything Nomad has blocked for this pool's node_pool and class.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler.model import Allocation, BlockedAsk, Node

MiB = 1024**2
DEFAULT_MHZ_PER_CORE = 2000  # only until a node of the pool reports its real capacity
_LIVE = frozenset({"pending", "running"})


@dataclass(frozen=True)
class Signals:
    ready_nodes: int
    cpu_percent: float | None  # None: no ready node, so no capacity to measure against
    memory_percent: float | None
    blocked_nodes: int  # new instances needed for the blocked placements
    blocked_placements: int
    unplaceable: int  # placements bigger than one instance: growing cannot help

    def value(self, metric: str) -> float | None:
        if metric == "percentage-allocated_cpu":
            return self.cpu_percent
        if metric == "percentage-allocated_memory":
            return self.memory_percent
        return float(self.blocked_nodes)


def pool_signals(
    ready_nodes: Sequence[Node],
    allocations: Iterable[Allocation],
    blocked: Iterable[BlockedAsk],
    *,
    node_class: str,
    node_pool: str,
    datacenter: str = "dc1",
    instance_cpus: int,
    instance_memory_bytes: int,
) -> Signals:
    """Signals over ``ready_nodes`` (the pool's ready, eligible members' nodes)."""
    ids = {n.id for n in ready_nodes}
    cpu_total = sum(n.cpu_mhz for n in ready_nodes)
    mem_total = sum(n.memory_mb for n in ready_nodes)
    cpu_used = mem_used = 0
    for a in allocations:
        if a.node_id in ids and a.desired_status == "run" and a.client_status in _LIVE:
            cpu_used += a.cpu_mhz
            mem_used += a.memory_mb
    # One instance's capacity: what the pool's nodes really offer, else its spec size.
    node_cpu = cpu_total // len(ready_nodes) if ready_nodes and cpu_total else 0
    node_cpu = node_cpu or instance_cpus * DEFAULT_MHZ_PER_CORE
    node_mem = mem_total // len(ready_nodes) if ready_nodes and mem_total else 0
    node_mem = node_mem or instance_memory_bytes // MiB
    asks: list[BlockedAsk] = []
    unplaceable = 0
    for ask in blocked:
        if not targets_pool(ask, node_class=node_class, node_pool=node_pool, datacenter=datacenter):
            continue
        if ask.cpu_mhz > node_cpu or ask.memory_mb > node_mem:
            unplaceable += ask.placements
        else:
            asks.append(ask)
    return Signals(
        ready_nodes=len(ready_nodes),
        cpu_percent=100.0 * cpu_used / cpu_total if cpu_total else None,
        memory_percent=100.0 * mem_used / mem_total if mem_total else None,
        blocked_nodes=nodes_to_place(asks, node_cpu, node_mem),
        blocked_placements=sum(a.placements for a in asks),
        unplaceable=unplaceable,
    )


def targets_pool(
    ask: BlockedAsk, *, node_class: str, node_pool: str, datacenter: str = "dc1"
) -> bool:
    """Could nodes of this pool place ``ask``?

    Same node pool; the pool's datacenter among the job's (globs allowed, as in
    Nomad); and its class allowed: by the job's ``${node.class}`` constraint when
    it has one, else by what Nomad found evaluating nodes of that class; when it
    evaluated none (the pool has no ready node yet), the job counts as ours
    unless it ruled some class out.
    """
    if ask.node_pool != node_pool:
        return False
    if ask.datacenters and not any(fnmatch.fnmatchcase(datacenter, d) for d in ask.datacenters):
        return False
    if ask.node_classes:
        return node_class in ask.node_classes
    eligible = ask.class_eligibility.get(node_class)
    if eligible is not None:
        return eligible
    return all(ask.class_eligibility.values())


BIN_PACK_LIMIT = 2_000  # placements; beyond, a per-ask estimate (still never too few)


def nodes_to_place(asks: Sequence[BlockedAsk], node_cpu: int, node_mem: int) -> int:
    """New nodes of (node_cpu, node_mem) that hold every placement: first-fit decreasing.

    Summing what is asked and dividing by a node's size under-counts: three 1.5 GB
    placements do not fit on two 2 GB nodes. Packing them as the scheduler would
    does not.
    """
    total = sum(a.placements for a in asks)
    if total == 0:
        return 0
    if total > BIN_PACK_LIMIT:
        return sum(math.ceil(a.placements / _per_node(a, node_cpu, node_mem)) for a in asks)

    def share(a: BlockedAsk) -> float:
        return max(a.cpu_mhz / node_cpu, a.memory_mb / node_mem)

    bins: list[list[int]] = []  # free [cpu, memory] of each new node
    for ask in sorted(asks, key=share, reverse=True):
        for _ in range(ask.placements):
            for free in bins:
                if free[0] >= ask.cpu_mhz and free[1] >= ask.memory_mb:
                    free[0] -= ask.cpu_mhz
                    free[1] -= ask.memory_mb
                    break
            else:
                bins.append([node_cpu - ask.cpu_mhz, node_mem - ask.memory_mb])
    return len(bins)


def _per_node(ask: BlockedAsk, node_cpu: int, node_mem: int) -> int:
    fits = [node_cpu // ask.cpu_mhz if ask.cpu_mhz else None]
    fits.append(node_mem // ask.memory_mb if ask.memory_mb else None)
    known = [f for f in fits if f is not None]
    return max(1, min(known)) if known else 1
