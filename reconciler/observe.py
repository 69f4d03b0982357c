"""Builds the observed world with a constant number of API reads.

One instance list from multipassd; one node list, one allocation list and one
list of blocked evaluations from Nomad, whatever the pool size: no per-node
calls. The four reads run
concurrently; if any fails the whole observation fails, because planning on a
partial view (a failed instance list read as "no instances") would destroy
what exists.

The node list has no Meta (protection, ownership) and no drain deadline. Full
node reads are cached by ModifyIndex and merged in when still current; the
controller asks for them (``detail``) only for the nodes a plan would disrupt,
so reads beyond the three lists are bounded by the actions taken, not by the
pool's size, and a steady pool costs none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable

from reconciler.clock import Clock
from reconciler.errors import ReconcilerError
from reconciler.model import (
    BROKEN_STATES,
    Allocation,
    BlockedAsk,
    ImageCatalogue,
    Node,
    NodeStatus,
    Observed,
)
from reconciler.multipass.client import MultipassClient
from reconciler.nomad import models as nomad_models
from reconciler.nomad.client import NodeDetails, NomadClient
from reconciler.nomad.errors import NotFound
from reconciler.pools import WATCH_WAIT

log = logging.getLogger(__name__)


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
        self._broken_since: dict[str, float] = {}  # likewise for stopped/suspended VMs
        self.details = NodeDetails(nomad)
        self._stubs: dict[str, nomad_models.NodeStub] = {}
        # Read the daemon's image list (`find`) every pass: `plan` does, to warn before
        # a launch of an image the daemon does not have. The loop does not: it reads it
        # only while the daemon has refused an image, to see when it stops refusing.
        self.check_images = False

    async def observe(self) -> Observed:
        instances, nodes, allocations, evaluations = await asyncio.gather(
            self.multipass.list_instances(),
            self.nomad.list_nodes(resources=True),
            self.nomad.list_allocations(),
            self.nomad.list_evaluations(status="blocked"),
        )
        self.reads += 4
        self._node_index = max(self._node_index, nodes.index)
        now = self.clock.now()
        down = {n.id for n in nodes.value if n.status in ("down", "disconnected")}
        self._down_since = {i: self._down_since.get(i, now) for i in down}
        broken = {i.name for i in instances if i.state in BROKEN_STATES}
        self._broken_since = {n: self._broken_since.get(n, now) for n in broken}
        instances = [
            dataclasses.replace(i, broken_since=self._broken_since[i.name])
            if i.name in broken
            else i
            for i in instances
        ]
        self._stubs = {n.id: n for n in nodes.value}
        self.details.keep_only(self._stubs)
        images, refused = await self._images()
        return Observed(
            instances=tuple(instances),
            nodes=tuple(self._node(n) for n in nodes.value),
            allocations=tuple(to_allocation(a) for a in allocations.value),
            at=now,
            nomad_index=nodes.index,
            blocked=await self._blocked_asks(evaluations.value),
            images=images,
            refused_images=refused,
        )

    async def _images(self) -> tuple[ImageCatalogue | None, dict[str, str]]:
        """The daemon's image list when wanted, and the images it refused and still lacks.

        A refusal (a launch answered "Unable to find an image matching ...") holds until
        `find` lists the image. A failed `find` is not an empty catalogue: it only means
        nothing new is known this pass.
        """
        refused = self.multipass.refused_images
        if not (self.check_images or refused):
            return None, dict(refused)
        try:
            images = await self.multipass.find()
        except ReconcilerError as exc:
            log.warning("multipassd's image list (find) could not be read: %s", exc)
            return None, dict(refused)
        finally:
            self.reads += 1
        for image in [i for i in refused if images.offers(i)]:
            del refused[image]
        return images, dict(refused)

    async def _blocked_asks(self, evals: list[nomad_models.Evaluation]) -> tuple[BlockedAsk, ...]:
        """Blocked task groups, sized and targeted from their jobs (one read per blocked job).

        The evaluation alone says only what ran out, and nothing when no node was
        there to evaluate; the job says what one placement needs and where it may go.
        """
        blocked = [e for e in evals if e.status == "blocked"]
        keys = sorted({(e.namespace, e.job_id) for e in blocked})
        jobs = await asyncio.gather(*(self._job(ns, job_id) for ns, job_id in keys))
        self.reads += len(keys)
        shapes = {k: j for k, j in zip(keys, jobs, strict=True) if j is not None}
        asks: list[BlockedAsk] = []
        for e in blocked:
            shape = shapes.get((e.namespace, e.job_id))
            if shape is not None:  # a job gone since its evaluation blocked asks for nothing
                asks += to_blocked_asks(e, shape)
        return tuple(asks)

    async def _job(self, namespace: str, job_id: str) -> nomad_models.JobShape | None:
        try:
            return await self.nomad.get_job(job_id, namespace)
        except NotFound:
            return None  # deregistered since: its blocked evaluation is moot

    def _node(self, stub: nomad_models.NodeStub) -> Node:
        full = self.details.cached(stub)
        if full is not None:
            return to_node(full, self._down_since.get(stub.id), detailed=True)
        return to_node(stub, self._down_since.get(stub.id))

    async def detail(self, observed: Observed, node_ids: Iterable[str]) -> Observed:
        """``observed`` with the given nodes read in full (a read only where not cached).

        A node purged since the list is left as listed: the next pass sees it gone.
        """
        stubs = [self._stubs[i] for i in node_ids if i in self._stubs]
        before = self.details.reads
        await self.details.fetch(stubs)
        self.reads += self.details.reads - before
        return dataclasses.replace(
            observed,
            nodes=tuple(
                self._node(self._stubs[n.id]) if n.id in self._stubs else n for n in observed.nodes
            ),
        )

    async def wait_for_node_change(self) -> None:
        while True:
            # Only the index matters here: no resources, less for Nomad to send and us to parse.
            result = await self.nomad.list_nodes(
                resources=False, index=self._node_index, wait=WATCH_WAIT
            )
            if result.index != self._node_index:
                self._node_index = result.index
                return


def to_node(
    n: nomad_models.NodeStub, down_since: float | None = None, *, detailed: bool = False
) -> Node:
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
        detailed=detailed,
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


def to_blocked_asks(
    e: nomad_models.Evaluation, job: nomad_models.JobShape | None = None
) -> list[BlockedAsk]:
    """One ask per task group Nomad could not place; the job, when read, sizes and targets it."""
    if e.status != "blocked":
        return []
    asks = []
    for group, metric in e.failed_tg_allocs.items():
        cpu = sum(r.cpu_mhz for r in metric.resources_exhausted.values())
        memory = sum(r.memory_mb for r in metric.resources_exhausted.values())
        if job is not None and group in job.groups:
            cpu, memory = job.groups[group].cpu_mhz, job.groups[group].memory_mb
        placements = e.queued_allocations.get(group) or metric.coalesced_failures + 1
        asks.append(
            BlockedAsk(
                eval_id=e.id,
                job_id=e.job_id,
                task_group=group,
                placements=placements,
                cpu_mhz=cpu,
                memory_mb=memory,
                node_pool=(job.node_pool if job else metric.node_pool) or "default",
                class_eligibility=dict(e.class_eligibility),
                datacenters=job.datacenters if job else (),
                node_classes=job.node_classes if job else (),
            )
        )
    return asks
