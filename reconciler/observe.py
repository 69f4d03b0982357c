"""Builds the observed world with a constant number of API reads.

One instance list from multipassd, one node list and one allocation list from
Nomad, whatever the pool size: no per-node calls. The three reads run
concurrently; if any fails the whole observation fails, because planning on a
partial view (a failed instance list read as "no instances") would destroy
what exists.
"""

from __future__ import annotations

import asyncio

from reconciler.clock import Clock
from reconciler.model import Allocation, Node, NodeStatus, Observed
from reconciler.multipass.client import MultipassClient
from reconciler.nomad import models as nomad_models
from reconciler.nomad.client import NomadClient
from reconciler.pools import WATCH_WAIT


class Observer:
    def __init__(self, nomad: NomadClient, multipass: MultipassClient, clock: Clock) -> None:
        self.nomad = nomad
        self.multipass = multipass
        self.clock = clock
        self._node_index = 0
        self.reads = 0  # API reads made, for the benchmark and tests
        # Node stubs carry no "down since": remember when each node was first seen
        # down (a restart forgets, which only makes the unhealthy timeout longer).
        self._down_since: dict[str, float] = {}

    async def observe(self) -> Observed:
        instances, nodes, allocations = await asyncio.gather(
            self.multipass.list_instances(),
            self.nomad.list_nodes(resources=True),
            self.nomad.list_allocations(),
        )
        self.reads += 3
        self._node_index = max(self._node_index, nodes.index)
        now = self.clock.now()
        down = {n.id for n in nodes.value if n.status in ("down", "disconnected")}
        self._down_since = {i: self._down_since.get(i, now) for i in down}
        return Observed(
            instances=tuple(instances),
            nodes=tuple(to_node(n, self._down_since.get(n.id)) for n in nodes.value),
            allocations=tuple(to_allocation(a) for a in allocations.value),
            at=now,
            nomad_index=nodes.index,
        )

    async def wait_for_node_change(self) -> None:
        while True:
            result = await self.nomad.list_nodes(index=self._node_index, wait=WATCH_WAIT)
            if result.index != self._node_index:
                self._node_index = result.index
                return


def to_node(n: nomad_models.NodeStub, down_since: float | None = None) -> Node:
    last = n.last_drain
    return Node(
        id=n.id,
        name=n.name,
        status=NodeStatus(n.status)
        if n.status in NodeStatus._value2member_map_
        else NodeStatus.DOWN,
        eligible=n.eligibility == "eligible",
        draining=n.drain,
        drain_meta=dict(last.meta) if last else {},
        drain_started_at=last.started_at if last else None,
        drain_deadline_at=n.drain_strategy.force_deadline if n.drain_strategy else None,
        last_drain_status=last.status if last else None,
        meta=dict(n.meta),
        node_class=n.node_class,
        datacenter=n.datacenter,
        node_pool=n.node_pool,
        cpu_mhz=n.cpu_mhz,
        memory_mb=n.memory_mb,
        status_updated_at=n.status_updated_at or down_since,
        create_index=n.create_index,
    )


def to_allocation(a: nomad_models.Allocation) -> Allocation:
    return Allocation(
        id=a.id,
        node_id=a.node_id,
        job_id=a.job_id,
        job_type=a.job_type,
        client_status=a.client_status,
        desired_status=a.desired_status,
        cpu_mhz=a.cpu_mhz,
        memory_mb=a.memory_mb,
    )
