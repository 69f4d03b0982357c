"""Allocations and evaluations (after nomad/state/state_store.go's allocs and evals tables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.sim.nomad_state.base import StateBase

if TYPE_CHECKING:
    from reconciler.sim.nomad_state.jobs import SimJob
    from reconciler.sim.nomad_state.nodes import SimNode

_TERMINAL = ("complete", "failed", "lost")


@dataclass
class SimAlloc:
    id: str
    namespace: str
    job_id: str
    job_type: str
    task_group: str
    task: str
    name: str
    name_index: int
    node_id: str
    node_name: str
    cpu_mhz: int
    memory_mb: int
    eval_id: str
    create_index: int
    modify_index: int
    create_time: float
    modify_time: float
    client_status: str = "pending"
    desired_status: str = "run"
    desired_description: str = ""
    client_description: str = ""

    @property
    def live(self) -> bool:
        """Wanted and not finished: counts towards its job and holds resources on its node."""
        return self.desired_status == "run" and self.client_status in ("pending", "running")

    @property
    def terminal(self) -> bool:
        return self.client_status in _TERMINAL


@dataclass
class SimMetric:
    """AllocMetric for a task group that could not be (fully) placed."""

    nodes_evaluated: int = 0
    nodes_filtered: int = 0
    nodes_in_pool: int = 0
    node_pool: str = "default"
    nodes_available: dict[str, int] = field(default_factory=dict)
    class_filtered: dict[str, int] = field(default_factory=dict)
    constraint_filtered: dict[str, int] = field(default_factory=dict)
    nodes_exhausted: int = 0
    class_exhausted: dict[str, int] = field(default_factory=dict)
    dimension_exhausted: dict[str, int] = field(default_factory=dict)
    resources_exhausted: dict[str, dict[str, int]] = field(default_factory=dict)
    coalesced_failures: int = 0


@dataclass
class SimEval:
    id: str
    namespace: str
    job_id: str
    type: str
    priority: int
    status: str
    triggered_by: str
    create_index: int
    modify_index: int
    create_time: float
    modify_time: float
    status_description: str = ""
    failed_tg_allocs: dict[str, SimMetric] = field(default_factory=dict)
    class_eligibility: dict[str, bool] = field(default_factory=dict)
    queued_allocations: dict[str, int] = field(default_factory=dict)


class AllocationTables(StateBase):
    if TYPE_CHECKING:
        # jobs.py
        def _ready_nodes(self) -> list[SimNode]: ...

        @staticmethod
        def _dc_match(job: SimJob, dc: str) -> bool: ...

    # ------------------------------------------------------------ allocations

    def _allocs_changed(self, allocs: list[SimAlloc]) -> int:
        if not allocs:
            return self.index
        idx = self._commit("allocs", [(a.id, a.namespace, a.node_id) for a in allocs])
        for a in allocs:
            if a.create_index == 0:
                a.create_index = idx
            a.modify_index = idx
            a.modify_time = self._t
        return idx

    def _stop_allocs(self, allocs: list[SimAlloc], why: str) -> None:
        for a in allocs:
            a.desired_status = "stop"
            a.desired_description = why
            a.client_status = "complete"
        self._allocs_changed(allocs)

    def _lose_allocs(self, node: SimNode, why: str) -> None:
        lost = [a for a in self._allocs_on(node.id) if not a.terminal]
        for a in lost:
            a.client_status = "lost"
            a.desired_status = "stop"
            a.desired_description = why
        self._allocs_changed(lost)

    def _allocs_on(self, node_id: str) -> list[SimAlloc]:
        return sorted(
            (a for a in self.allocs.values() if a.node_id == node_id),
            key=lambda a: (a.job_id, a.name_index, a.create_index),
        )

    def _on_alloc_running(self, alloc_id: str) -> None:
        alloc = self.allocs.get(alloc_id)
        if alloc is None or alloc.client_status != "pending":
            return
        alloc.client_status = "running"
        self._allocs_changed([alloc])
        job = self.jobs.get((alloc.namespace, alloc.job_id))
        if job is not None and job.type == "batch" and job.run_for is not None:
            self._at(self._t + job.run_for, "alloc_finished", alloc.id)

    def _on_alloc_finished(self, alloc_id: str) -> None:
        """A batch allocation ran its course."""
        self._complete(alloc_id)

    def _complete(self, alloc_id: str) -> None:
        """The allocation ends (finished or stopped); a drain waiting on it moves on."""
        alloc = self.allocs.get(alloc_id)
        if alloc is None or alloc.terminal:
            return
        alloc.client_status = "complete"
        self._allocs_changed([alloc])
        node = self.nodes.get(alloc.node_id)
        if node is not None and node.drain is not None:
            self._drain_progress(node)
        self._schedule()

    def list_allocations(self, namespace: str = "*", node_id: str | None = None) -> list[SimAlloc]:
        self.tick()
        return sorted(
            (
                a
                for a in self.allocs.values()
                if (namespace == "*" or a.namespace == namespace)
                and (node_id is None or a.node_id == node_id)
            ),
            key=lambda a: a.create_index,
        )

    def _on_alloc_stopped(self, alloc_id: str) -> None:
        """A stop the scheduler asked for has taken effect on the client."""
        self._complete(alloc_id)

    def allocated(self, node_id: str) -> tuple[int, int]:
        """(cpu MHz, memory MB) held by live allocations on the node."""
        cpu = mem = 0
        for a in self.allocs.values():
            if a.node_id == node_id and a.live:
                cpu += a.cpu_mhz
                mem += a.memory_mb
        return cpu, mem

    # ------------------------------------------------------------ evaluations

    def _evals_changed(self, evals: list[SimEval]) -> int:
        idx = self._commit("evals", [(e.id, e.namespace, "") for e in evals])
        for e in evals:
            e.modify_index = idx
            e.modify_time = self._t
        return idx

    def _blocked_eval(self, job: SimJob) -> SimEval | None:
        for e in self.evals.values():
            if e.job_id == job.id and e.namespace == job.namespace and e.status == "blocked":
                return e
        return None

    def _block(self, job: SimJob, unplaced: int, metric: SimMetric) -> None:
        for node in self._ready_nodes():
            if self._dc_match(job, node.datacenter) and (
                node.node_pool == job.node_pool or job.node_pool == "all"
            ):
                metric.nodes_available[node.datacenter] = (
                    metric.nodes_available.get(node.datacenter, 0) + 1
                )
        # Like Nomad's ExhaustResources: what one allocation asked in each exhausted dimension.
        asked: dict[str, int] = {}
        if metric.dimension_exhausted.get("cpu"):
            asked["CPU"] = job.cpu_mhz
        if metric.dimension_exhausted.get("memory"):
            asked["MemoryMB"] = job.memory_mb
        if metric.dimension_exhausted:
            metric.resources_exhausted = {job.task: {"CPU": 0, "MemoryMB": 0} | asked}
        metric.coalesced_failures = unplaced - 1
        classes = {n.node_class for n in self._ready_nodes() if n.node_class}
        eligibility = {c: job.node_class is None or c == job.node_class for c in sorted(classes)}
        existing = self._blocked_eval(job)
        failed = {job.task_group: metric}
        queued = {job.task_group: unplaced}
        if existing is not None:
            if (
                existing.failed_tg_allocs == failed
                and existing.queued_allocations == queued
                and existing.class_eligibility == eligibility
            ):
                return
            existing.failed_tg_allocs = failed
            existing.queued_allocations = queued
            existing.class_eligibility = eligibility
            self._evals_changed([existing])
            return
        ev = SimEval(
            id=self.new_id(),
            namespace=job.namespace,
            job_id=job.id,
            type=job.type,
            priority=job.priority,
            status="blocked",
            triggered_by="queued-allocs",
            create_index=0,
            modify_index=0,
            create_time=self._t,
            modify_time=self._t,
            failed_tg_allocs=failed,
            class_eligibility=eligibility,
            queued_allocations=queued,
        )
        self.evals[ev.id] = ev
        ev.create_index = self._evals_changed([ev])

    def list_evaluations(
        self, namespace: str = "*", status: str | None = None, job: str | None = None
    ) -> list[SimEval]:
        self.tick()
        return sorted(
            (
                e
                for e in self.evals.values()
                if (namespace == "*" or e.namespace == namespace)
                and (not status or e.status == status)
                and (not job or e.job_id == job)
            ),
            key=lambda e: e.create_index,
        )
