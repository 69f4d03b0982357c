"""Builds the observed world with a constant number of API reads per host.

Per Multipass host, one instance list (and, at most once a minute, daemon_info and
version for its capacity and version); from Nomad, the host variables (from the
pass's one list of ``<prefix>``), one node list and one allocation list, whatever the
pool size: no per-node calls. Everything runs concurrently. Blocked evaluations are
read apart (``blocked``), in the passes where a pool's policy uses them.

Hosts are read independently (reconciler/fleet.py). A host whose daemon cannot be
read this pass (an error, or no answer within ``host_timeout``) is reported
``reachable=False`` with its error, and its instances are absent: an unknown
inventory, never an empty one that looks reachable, because planning on "no
instances" would relaunch (or forget) what exists there. When no host at all can be
read the observation fails, as does any failed Nomad read: nothing is planned on a
view missing everything the planner needs.

The node list has no Meta (protection, ownership) and no drain deadline. Full
node reads are cached by ModifyIndex and merged in when still current; the
controller asks for them (``detail``) only for the nodes a plan would disrupt,
so reads beyond the lists are bounded by the actions taken, not by the
pool's size, and a steady pool costs none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.clock import Clock
from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.fleet import Fleet
from reconciler.hosts import HostSpec, usable_capacity
from reconciler.model import (
    BROKEN_STATES,
    Allocation,
    BlockedAsk,
    HostState,
    ImageCatalogue,
    Instance,
    Node,
    NodeStatus,
    Observed,
)
from reconciler.multipass.client import DaemonInfo, MultipassClient
from reconciler.nomad import models as nomad_models
from reconciler.nomad.client import NodeDetails, NomadClient
from reconciler.nomad.errors import NotFound
from reconciler.pools import WATCH_WAIT, PrefixListing

log = logging.getLogger(__name__)

# daemon_info and version change rarely (a new daemon, a resized host): read again after this.
DAEMON_INFO_TTL = 60.0


@dataclass(frozen=True)
class _Daemon:
    """What daemon_info and version said, for one client, when (clock.monotonic())."""

    client: MultipassClient
    info: DaemonInfo
    version: str
    at: float


@dataclass(frozen=True)
class _HostRead:
    """One host's part of a pass: its instances, or the error that hid them."""

    host: str
    instances: list[Instance] | None = None
    daemon: _Daemon | None = None
    error: BaseException | None = None


class Observer:
    def __init__(
        self,
        nomad: NomadClient,
        multipass: Fleet | MultipassClient,
        clock: Clock,
        *,
        host_timeout: float | None = None,
    ) -> None:
        """``multipass``: the fleet, or one client as the only host (``default``).

        Given one client, the world is the one before hosts: ``Observed.hosts`` stays
        empty (no capacity accounted) and no daemon_info is read.
        """
        self.nomad = nomad
        self._one_client = not isinstance(multipass, Fleet)
        self.fleet = multipass if isinstance(multipass, Fleet) else Fleet.single(multipass)
        self.clock = clock
        # Real seconds one host's reads may take before that host counts as unreachable
        # this pass; below the controller's read_timeout (app.connect sets it), so one
        # hanging daemon cannot fail the whole pass. None: no deadline of its own.
        self.host_timeout = host_timeout
        self.daemon_info_ttl = DAEMON_INFO_TTL
        self._node_index = 0
        self.reads = 0  # API reads (and RPCs) made, for the benchmark and tests
        # Node stubs carry no "down since": remember when each node was first seen
        # down (a restart forgets, which only makes the unhealthy timeout longer).
        self._down_since: dict[str, float] = {}
        # Likewise for stopped/suspended VMs, by (host, name).
        self._broken_since: dict[tuple[str, str], float] = {}
        self._daemons: dict[str, _Daemon] = {}  # host -> its last daemon_info and version
        self._unreachable: dict[str, str] = {}  # host -> the error last logged for it
        self.details = NodeDetails(nomad)
        self._stubs: dict[str, nomad_models.NodeStub] = {}
        # By node ID: the stub (or full read) and down-since each Node was built from.
        self._nodes: dict[str, tuple[nomad_models.NodeStub, float | None, Node]] = {}
        # Read the daemon's image list (`find`) every pass: `plan` does, to warn before
        # a launch of an image the daemon does not have. The loop does not: it reads it
        # only while the daemon has refused an image, to see when it stops refusing.
        self.check_images = False

    async def observe(self, listing: PrefixListing | None = None) -> Observed:
        """The world, but for blocked evaluations (``blocked``: only autoscaling reads them).

        ``listing``: the pass's list of ``<prefix>``, which holds the host variables.
        """
        (nodes, allocations), reads = await asyncio.gather(
            asyncio.gather(self.nomad.list_nodes(resources=True), self.nomad.list_allocations()),
            self._read_hosts(listing),
        )
        self.reads += 2
        self._raise_if_no_host_was_read(reads)  # said by the pass's error, not logged here
        for read in reads:
            self._log_reachability(read)
        self._node_index = max(self._node_index, nodes.index)
        now = self.clock.now()
        down = {n.id for n in nodes.value if n.status in ("down", "disconnected")}
        self._down_since = {i: self._down_since.get(i, now) for i in down}
        instances = [
            dataclasses.replace(i, host=r.host) if i.host != r.host else i
            for r in reads
            if r.instances is not None
            for i in r.instances
        ]
        broken = {(i.host, i.name) for i in instances if i.state in BROKEN_STATES}
        self._broken_since = {k: self._broken_since.get(k, now) for k in broken}
        instances = [
            dataclasses.replace(i, broken_since=self._broken_since[(i.host, i.name)])
            if (i.host, i.name) in broken
            else i
            for i in instances
        ]
        self._stubs = {n.id: n for n in nodes.value}
        self.details.keep_only(self._stubs)
        self._nodes = {i: built for i, built in self._nodes.items() if i in self._stubs}
        images, refused = await self._images([r.host for r in reads if r.error is None])
        return Observed(
            instances=tuple(instances),
            nodes=tuple(self._node(n) for n in nodes.value),
            allocations=tuple(to_allocation(a) for a in allocations.value),
            at=now,
            nomad_index=nodes.index,
            images=images,
            refused_images=refused,
            hosts={} if self._one_client else self._host_states(reads),
        )

    # ------------------------------------------------------------ hosts

    async def _read_hosts(self, listing: PrefixListing | None) -> list[_HostRead]:
        """Every host of the fleet, read concurrently; a failure is that host's alone."""
        # The host variables' reads and the connects' RPCs are counted where they are made.
        source = self.fleet.source
        before = (source.reads if source is not None else 0) + self.fleet.rpcs
        try:
            # The hosts as last listed are read while their variables are listed again,
            # so multipassd is not asked one Nomad round trip late. A read is kept when
            # its host's variable did not move; a host added or changed by the list is
            # read after it, and one removed is dropped.
            known = {h: self.fleet.index(h) for h in self.fleet.names()}
            early = {h: asyncio.ensure_future(self._read_host_in_time(h)) for h in known}
            try:
                await self.fleet.refresh(listing)
            except BaseException:
                await _cancel(early.values())
                raise
            stale = {h for h in early if self.fleet.index(h) != known[h]}
            await _cancel(early[h] for h in stale)
            return list(
                await asyncio.gather(
                    *(
                        early[h] if h in early and h not in stale else self._read_host_in_time(h)
                        for h in self.fleet.names()
                    )
                )
            )
        finally:
            after = (source.reads if source is not None else 0) + self.fleet.rpcs
            self.reads += after - before

    async def _read_host_in_time(self, host: str) -> _HostRead:
        try:
            if self.host_timeout is None:
                read = await self._read_host(host)
            else:
                read = await asyncio.wait_for(self._read_host(host), self.host_timeout)
        except TimeoutError:
            read = _HostRead(
                host,
                error=TemporaryError(
                    f"host {host}: multipassd did not answer within {self.host_timeout:g}s"
                ),
            )
        except ReconcilerError as exc:
            read = _HostRead(host, error=exc)
        return read

    async def _read_host(self, host: str) -> _HostRead:
        client = await self.fleet.connect(host)
        if self._one_client:
            self.reads += 1
            return _HostRead(host, instances=await client.list_instances())
        instances, daemon = await asyncio.gather(self._list(client), self._daemon(host, client))
        return _HostRead(host, instances=instances, daemon=daemon)

    async def _list(self, client: MultipassClient) -> list[Instance]:
        self.reads += 1
        return await client.list_instances()

    async def _daemon(self, host: str, client: MultipassClient) -> _Daemon:
        """The host's daemon_info and version, read again at most every ``daemon_info_ttl``.

        Cached per client: a rebuilt client (a changed host variable) reads them anew.
        A failed re-read keeps what the same client said last time.
        """
        cached = self._daemons.get(host)
        fresh = cached is not None and cached.client is client
        if (
            fresh
            and cached is not None
            and self.clock.monotonic() - cached.at < self.daemon_info_ttl
        ):
            return cached
        self.reads += 2
        try:
            info, version = await asyncio.gather(client.daemon_info(), client.version())
        except ReconcilerError as exc:
            if fresh and cached is not None:
                # The host's reachability is logged once by _log_reachability.
                log.debug("host %s: daemon_info could not be read again: %s", host, exc)
                return cached
            raise
        daemon = _Daemon(client, info, version, self.clock.monotonic())
        self._daemons[host] = daemon
        return daemon

    def _raise_if_no_host_was_read(self, reads: list[_HostRead]) -> None:
        """No host answered: the pass fails, as it did when the one daemon failed."""
        failed = [r for r in reads if r.error is not None]
        if not failed or len(failed) < len(reads):
            return
        if len(failed) == 1 and failed[0].error is not None:
            raise failed[0].error
        raise TemporaryError(
            "no Multipass host could be read: "
            + "; ".join(_with_host(r.host, _message(r.error)) for r in failed)
        )

    def _log_reachability(self, read: _HostRead) -> None:
        """One warning when a host becomes unreachable (or its error changes), one on return."""
        if read.error is None:
            if self._unreachable.pop(read.host, None) is not None:
                log.info("host %s: multipassd answers again", read.host)
            return
        error = _message(read.error)
        if self._unreachable.get(read.host) != error:
            self._unreachable[read.host] = error
            log.warning(
                "host %s unreachable, its inventory unknown this pass: %s", read.host, error
            )

    def _host_states(self, reads: list[_HostRead]) -> dict[str, HostState]:
        self._daemons = {h: d for h, d in self._daemons.items() if h in self.fleet.names()}
        return {r.host: self._host_state(r) for r in reads}

    def _host_state(self, read: _HostRead) -> HostState:
        spec = self.fleet.spec(read.host) or HostSpec(read.host, "")
        # An unreachable host keeps the last figures its client gave, for display: the
        # planner places nothing on it either way.
        daemon = read.daemon or self._daemons.get(read.host)
        cpus = memory = disk = 0
        version = ""
        if daemon is not None:
            version = daemon.version
            cpus, memory, disk = usable_capacity(
                spec, daemon.info.cpus, daemon.info.memory, daemon.info.available_space
            )
        return HostState(
            name=read.host,
            reachable=read.error is None,
            error=None if read.error is None else _message(read.error),
            version=version,
            cpus=cpus,
            memory=memory,
            disk=disk,
            cordoned=spec.cordoned,
            evacuate=spec.evacuate,
            max_parallel_launches=spec.max_parallel_launches,
        )

    # ------------------------------------------------------------ images

    async def _images(self, hosts: list[str]) -> tuple[ImageCatalogue | None, dict[str, str]]:
        """The daemons' image lists when wanted, and the images refused and still lacking.

        A refusal (a launch answered "Unable to find an image matching ...") holds until
        that daemon's `find` lists the image. A failed `find` is not an empty catalogue:
        it only means nothing new is known this pass.

        Across hosts: ``images`` is the union of the catalogues of the hosts read this
        pass, and the refusals of every host are merged into one mapping, so a pool
        whose image one daemon refused waits on it everywhere (the planner knows images
        per pool, not per host) until that daemon offers it again.
        """
        clients = {h: self.fleet.client(h) for h in hosts}
        refused = {h: c.refused_images for h, c in clients.items()}
        asked = [h for h in hosts if self.check_images or refused[h]]
        found = await asyncio.gather(
            *(self._find(h, clients[h]) for h in asked), return_exceptions=False
        )
        catalogues = {h: c for h, c in zip(asked, found, strict=True) if c is not None}
        for h, images in catalogues.items():
            for image in [i for i in refused[h] if images.offers(i)]:
                del refused[h][image]
        merged: dict[str, str] = {}
        # Refusals of hosts not read this pass stand too: nothing new is known of them.
        for h in self.fleet.names():
            try:
                merged.update(self.fleet.client(h).refused_images)
            except ReconcilerError:
                continue
        if not catalogues:
            return None, merged
        names = frozenset().union(*(c.names for c in catalogues.values()))
        return ImageCatalogue(names), merged

    async def _find(self, host: str, client: MultipassClient) -> ImageCatalogue | None:
        try:
            return await client.find()
        except ReconcilerError as exc:
            log.warning("host %s: multipassd's image list (find) could not be read: %s", host, exc)
            return None
        finally:
            self.reads += 1

    async def blocked(self) -> tuple[BlockedAsk, ...]:
        """Blocked task groups, sized and targeted from their jobs (one read per blocked job).

        The evaluation alone says only what ran out, and nothing when no node was
        there to evaluate; the job says what one placement needs and where it may go.
        """
        evals = (await self.nomad.list_evaluations(status="blocked")).value
        self.reads += 1
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
        source = full if full is not None else stub
        down_since = self._down_since.get(stub.id)
        # The client hands back the same stub while the node is unchanged: so is its Node.
        known = self._nodes.get(stub.id)
        if known is not None and known[0] is source and known[1] == down_since:
            return known[2]
        node = to_node(source, down_since, detailed=full is not None)
        self._nodes[stub.id] = (source, down_since, node)
        return node

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

    async def wait_for_host_change(self) -> None:
        """Return once a host variable was created, changed or deleted; never without any."""
        if self.fleet.source is None:
            await asyncio.Event().wait()  # one fixed client: no host variables to watch
        else:
            await self.fleet.source.wait_for_change()

    async def wait_for_node_change(self) -> None:
        while True:
            index = await self.nomad.wait_for_nodes(self._node_index, WATCH_WAIT)
            if index != self._node_index:
                self._node_index = index
                return


async def _cancel(tasks: Iterable[asyncio.Future[_HostRead]]) -> None:
    """Cancel reads no longer wanted and let them end."""
    waiting = list(tasks)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


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


def _message(error: BaseException | None) -> str:
    """A host's error as its HostState and logs say it."""
    return str(error) or type(error).__name__


def _with_host(host: str, message: str) -> str:
    return message if message.startswith(f"host {host}") else f"{host}: {message}"
