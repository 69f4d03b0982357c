"""Nodes and their drains (after nomad/node_endpoint.go and nomad/drainer)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.sim.nomad_state.base import SimError, StateBase

if TYPE_CHECKING:
    from reconciler.sim.nomad_state.allocations import SimAlloc

NODE_INITIALIZING = "initializing"
NODE_READY = "ready"
NODE_DOWN = "down"

MAX_NODE_EVENTS = 10  # structs.MaxRetainedNodeEvents: older events are pruned

# Node.Events as Nomad words them (nomad/state/state_store.go, nomad/node_endpoint.go,
# nomad/heartbeat.go, nomad/drainer/drainer.go).
CLUSTER = "Cluster"
DRAIN = "Drain"
EVENT_REGISTERED = "Node registered"
EVENT_REREGISTERED = "Node re-registered"
EVENT_HEARTBEAT_REREGISTERED = "Node reregistered by heartbeat"
EVENT_HEARTBEAT_MISSED = "Node heartbeat missed"
EVENT_ELIGIBLE = "Node marked as eligible for scheduling"
EVENT_INELIGIBLE = "Node marked as ineligible for scheduling"
EVENT_DRAIN_SET = "Node drain strategy set"
EVENT_DRAIN_UPDATED = "Node drain strategy updated"
EVENT_DRAIN_DISABLED = "Node drain disabled"
EVENT_DRAIN_COMPLETE = "Node drain complete"


@dataclass
class SimNodeEvent:
    subsystem: str
    message: str
    timestamp: float
    details: dict[str, str] = field(default_factory=dict)
    create_index: int = 0


@dataclass
class SimDrain:
    deadline: float  # seconds as requested: 0 none, < 0 force
    ignore_system_jobs: bool
    started_at: float
    force_at: float | None  # when what is left gets stopped; None without a deadline
    gen: int = 0


@dataclass
class SimLastDrain:
    status: str  # draining | complete | canceled
    meta: dict[str, str]
    started_at: float
    updated_at: float
    accessor_id: str = ""


@dataclass
class SimNode:
    id: str
    name: str
    datacenter: str
    node_class: str
    node_pool: str
    meta: dict[str, str]
    cpu_mhz: int  # total; allocatable = total - reserved
    memory_mb: int
    disk_mb: int
    reserved_cpu_mhz: int
    reserved_memory_mb: int
    address: str
    status: str
    status_updated_at: float
    create_index: int
    modify_index: int
    eligibility: str = "eligible"
    status_description: str = ""
    drain: SimDrain | None = None
    last_drain: SimLastDrain | None = None
    heartbeating: bool = True
    gen: int = 0  # bumped to invalidate pending ready/down events
    events: list[SimNodeEvent] = field(default_factory=list)

    @property
    def allocatable_cpu(self) -> int:
        return self.cpu_mhz - self.reserved_cpu_mhz

    @property
    def allocatable_memory(self) -> int:
        return self.memory_mb - self.reserved_memory_mb


class NodeTables(StateBase):
    heartbeat_timeout: float
    init_seconds: float
    migrate_seconds: float
    _addresses: int

    if TYPE_CHECKING:
        # allocations.py
        def _allocs_on(self, node_id: str) -> list[SimAlloc]: ...

        def _allocs_changed(self, allocs: list[SimAlloc]) -> int: ...

        def _stop_allocs(self, allocs: list[SimAlloc], why: str) -> None: ...

        def _lose_allocs(self, node: SimNode, why: str) -> None: ...

    def _node_changed(
        self,
        *nodes: SimNode,
        event: str = "",
        subsystem: str = CLUSTER,
        details: Mapping[str, str] | None = None,
    ) -> int:
        """Write the nodes at a new index, recording ``event`` on each (appendNodeEvents)."""
        idx = self._commit("nodes", [(n.id, "", n.id) for n in nodes])
        for n in nodes:
            n.modify_index = idx
            if event:
                n.events.append(
                    SimNodeEvent(subsystem, event, self.now(), dict(details or {}), idx)
                )
                del n.events[:-MAX_NODE_EVENTS]
        return idx

    def _set_status(self, node: SimNode, status: str, description: str = "") -> None:
        node.status = status
        node.status_description = description
        node.status_updated_at = self._t

    def register_node(
        self,
        name: str,
        *,
        datacenter: str = "dc1",
        node_class: str = "",
        node_pool: str = "default",
        meta: Mapping[str, str] | None = None,
        cpu_mhz: int = 4000,
        memory_mb: int = 8192,
        disk_mb: int = 40960,
        reserved_cpu_mhz: int = 0,
        reserved_memory_mb: int = 0,
        node_id: str | None = None,
    ) -> str:
        """A Nomad client registers: "initializing" now, "ready" after ``init_seconds``.

        A new node ID unless ``node_id`` names a known node (a client restarting
        with its data dir), which re-registers in place.
        """
        self.tick()
        now = self.now()
        node = self.nodes.get(node_id) if node_id else None
        event = EVENT_REGISTERED
        if node is None:
            self._addresses += 1
            node = SimNode(
                id=node_id or self.new_id(),
                name=name,
                datacenter=datacenter,
                node_class=node_class,
                node_pool=node_pool,
                meta=dict(meta or {}),
                cpu_mhz=cpu_mhz,
                memory_mb=memory_mb,
                disk_mb=disk_mb,
                reserved_cpu_mhz=reserved_cpu_mhz,
                reserved_memory_mb=reserved_memory_mb,
                address=f"10.{self._addresses // 65536 % 256}.{self._addresses // 256 % 256}."
                f"{self._addresses % 256}",
                status=NODE_INITIALIZING,
                status_updated_at=now,
                create_index=0,
                modify_index=0,
            )
            self.nodes[node.id] = node
        else:
            event = EVENT_REREGISTERED if node.status == NODE_DOWN else ""
            node.name, node.datacenter, node.node_class = name, datacenter, node_class
            node.node_pool, node.meta = node_pool, dict(meta or {})
            node.cpu_mhz, node.memory_mb, node.disk_mb = cpu_mhz, memory_mb, disk_mb
            node.reserved_cpu_mhz, node.reserved_memory_mb = reserved_cpu_mhz, reserved_memory_mb
        self._t = now
        self._set_status(node, NODE_INITIALIZING)
        node.heartbeating = True
        node.gen += 1
        idx = self._node_changed(node, event=event)
        if node.create_index == 0:
            node.create_index = idx
        self._at(now + self.init_seconds, "node_ready", node.id, node.gen)
        self.tick()
        return node.id

    def find_node(self, name_or_id: str) -> SimNode | None:
        """By ID, else the most recently registered node of that name."""
        if name_or_id in self.nodes:
            return self.nodes[name_or_id]
        named = [n for n in self.nodes.values() if n.name == name_or_id]
        return max(named, key=lambda n: n.create_index) if named else None

    def node_lost(self, name: str) -> None:
        """The node's heartbeats stop (its VM is gone or stopped): down after the timeout."""
        self.tick()
        node = self.find_node(name)
        if node is None or not node.heartbeating:
            return
        node.heartbeating = False
        node.gen += 1
        self._at(self.now() + self.heartbeat_timeout, "node_down", node.id, node.gen)
        self.tick()

    def node_recovered(self, name: str) -> None:
        """Heartbeats resume (the same client came back): ready again after ``init_seconds``."""
        self.tick()
        node = self.find_node(name)
        if node is None or node.heartbeating:
            return
        node.heartbeating = True
        node.gen += 1
        if node.status == NODE_DOWN:
            self._t = self.now()
            self._set_status(node, NODE_INITIALIZING)
            # Node.UpdateStatus: a down node's heartbeat brings it back.
            self._node_changed(node, event=EVENT_HEARTBEAT_REREGISTERED)
            self._at(self._t + self.init_seconds, "node_ready", node.id, node.gen)
        self.tick()

    def _on_node_ready(self, node_id: str, gen: int) -> None:
        node = self.nodes.get(node_id)
        if node is None or node.gen != gen or node.status == NODE_READY:
            return
        self._set_status(node, NODE_READY)
        self._node_changed(node)
        self._schedule()

    def _on_node_down(self, node_id: str, gen: int) -> None:
        node = self.nodes.get(node_id)
        if node is None or node.gen != gen or node.status == NODE_DOWN:
            return
        self._set_status(node, NODE_DOWN, "node heartbeat missed")
        self._node_changed(node, event=EVENT_HEARTBEAT_MISSED)
        self._lose_allocs(node, "alloc is lost since its node is down")
        if node.drain is not None:
            self._drain_progress(node)
        self._schedule()

    def get_node(self, node_id: str) -> SimNode:
        self.tick()
        node = self.nodes.get(node_id)
        if node is None:
            raise SimError(404, "node not found")
        return node

    def list_nodes(self, prefix: str = "") -> list[SimNode]:
        self.tick()
        return sorted(
            (n for n in self.nodes.values() if n.id.startswith(prefix)), key=lambda n: n.id
        )

    def apply_node_meta(self, node_id: str, changes: Mapping[str, str | None]) -> SimNode:
        """`nomad node meta apply`: set keys, unset those given as None; the node record changes.

        Real clients batch these for up to 10 s before the servers see them; here
        the change is visible at once, which only makes tests see it sooner.
        """
        self.tick()
        node = self.nodes.get(node_id)
        if node is None:
            raise SimError(404, "Unknown node")
        for key, value in changes.items():
            if value is None:
                node.meta.pop(key, None)
            else:
                node.meta[key] = value
        self._node_changed(node)
        return node

    def set_eligibility(self, node_id: str, eligible: bool) -> int:
        """Nomad's Node.UpdateEligibility; returns the write's index (0: nothing to do)."""
        self.tick()
        node = self.nodes.get(node_id)
        if node is None:
            raise SimError(500, "node not found")
        if node.drain is not None and eligible:
            raise SimError(
                500, "can not set node's scheduling eligibility to eligible while it is draining"
            )
        wanted = "eligible" if eligible else "ineligible"
        if node.eligibility == wanted:
            return 0
        self._t = self.now()
        node.eligibility = wanted
        node.status_updated_at = self._t
        idx = self._node_changed(node, event=EVENT_ELIGIBLE if eligible else EVENT_INELIGIBLE)
        self._schedule()
        return idx

    def update_drain(
        self,
        node_id: str,
        deadline: float | None,
        *,
        ignore_system_jobs: bool = False,
        mark_eligible: bool = False,
        meta: Mapping[str, str] | None = None,
        accessor_id: str = "",
    ) -> int:
        """Nomad's Node.UpdateDrain: ``deadline`` None cancels; returns the node's ModifyIndex.

        ``deadline`` is seconds: 0 means none, a negative value forces the drain now.
        """
        self.tick()
        node = self.nodes.get(node_id)
        if node is None:
            raise SimError(500, "node not found")
        now = self._t = self.now()
        was_draining = node.drain is not None
        node.status_updated_at = now
        if deadline is not None:
            started = node.drain.started_at if node.drain else now
            force_at = now + deadline if deadline > 0 else (now if deadline < 0 else None)
            gen = (node.drain.gen if node.drain else 0) + 1
            node.drain = SimDrain(deadline, ignore_system_jobs, started, force_at, gen)
            node.eligibility = "ineligible"
            if not was_draining or node.last_drain is None:
                node.last_drain = SimLastDrain("draining", dict(meta or {}), now, now, accessor_id)
            node.last_drain.status = "draining"
            node.last_drain.updated_at = now
            if meta:
                node.last_drain.meta = dict(meta)
            if accessor_id:
                node.last_drain.accessor_id = accessor_id
            event = EVENT_DRAIN_UPDATED if was_draining else EVENT_DRAIN_SET
            idx = self._node_changed(node, event=event, subsystem=DRAIN)
            self._at(now, "drain_step", node.id, gen)
            if force_at is not None:
                self._at(force_at, "drain_deadline", node.id, gen)
        else:
            node.drain = None
            if mark_eligible:
                node.eligibility = "eligible"
            if was_draining and node.last_drain is not None:
                node.last_drain.status = "canceled"
                node.last_drain.updated_at = now
                if meta:
                    node.last_drain.meta = dict(meta)
            event = EVENT_DRAIN_DISABLED if was_draining else ""  # no drain, nothing to say
            idx = self._node_changed(node, event=event, subsystem=DRAIN)
            self._schedule()
        self.tick()
        return idx

    def purge_node(self, node_id: str) -> int:
        """Remove the node from the state; its allocations are lost (and replaced)."""
        self.tick()
        node = self.nodes.pop(node_id, None)
        if node is None:
            raise SimError(500, "node not found")
        self._t = self.now()
        node.gen += 1
        idx = self._commit("nodes", [(node.id, "", node.id)])
        self._lose_allocs(node, "alloc is lost since its node was purged")
        self._schedule()
        return idx

    # ------------------------------------------------------------ drains

    def _on_drain_step(self, node_id: str, gen: int) -> None:
        node = self.nodes.get(node_id)
        if node is None or node.drain is None or node.drain.gen != gen:
            return
        self._drain_progress(node)

    def _drain_progress(self, node: SimNode) -> None:
        """Migrate what may migrate now; finish the drain when nothing is left to drain."""
        drain = node.drain
        assert drain is not None
        on_node = [a for a in self._allocs_on(node.id) if not a.terminal]
        service = [a for a in on_node if a.job_type == "service"]
        busy = {a.job_id for a in service if a.desired_status != "run"}
        started: list[SimAlloc] = []
        for a in service:
            if a.desired_status == "run" and a.job_id not in busy:
                # One at a time per job: Nomad's migrate block defaults to max_parallel = 1.
                a.desired_status = "stop"
                a.desired_description = "alloc is being migrated"
                busy.add(a.job_id)
                started.append(a)
                self._at(self._t + self.migrate_seconds, "alloc_stopped", a.id)
        if started:
            self._allocs_changed(started)
            self._schedule()  # the replacements
        if service or any(a.job_type == "batch" for a in on_node):
            return  # batch allocations are waited for; a finishing one calls back here
        system = [a for a in on_node if a.job_type == "system"]
        if system and not drain.ignore_system_jobs:
            self._stop_allocs(system, "alloc is being drained")
        self._finish_drain(node)

    def _on_drain_deadline(self, node_id: str, gen: int) -> None:
        node = self.nodes.get(node_id)
        if node is None or node.drain is None or node.drain.gen != gen:
            return
        left = [
            a
            for a in self._allocs_on(node.id)
            if not a.terminal and not (a.job_type == "system" and node.drain.ignore_system_jobs)
        ]
        self._stop_allocs(left, "alloc was stopped at the drain deadline")
        self._finish_drain(node, deadline_reached=True)
        self._schedule()

    def _finish_drain(self, node: SimNode, *, deadline_reached: bool = False) -> None:
        node.drain = None
        node.status_updated_at = self._t
        if node.last_drain is not None:
            node.last_drain.status = "complete"
            node.last_drain.updated_at = self._t
        details = {"deadline_reached": "true"} if deadline_reached else None
        self._node_changed(node, event=EVENT_DRAIN_COMPLETE, subsystem=DRAIN, details=details)
