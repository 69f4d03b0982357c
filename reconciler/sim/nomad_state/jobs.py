"""Jobs and the scheduler that places their allocations (after nomad/state and scheduler/)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.sim.nomad_state.allocations import SimAlloc, SimMetric
from reconciler.sim.nomad_state.base import StateBase
from reconciler.sim.nomad_state.nodes import NODE_READY, SimNode

if TYPE_CHECKING:
    from reconciler.sim.nomad_state.allocations import SimEval


@dataclass
class SimJob:
    id: str
    namespace: str
    type: str  # service | batch | system
    count: int
    cpu_mhz: int
    memory_mb: int
    datacenters: tuple[str, ...]
    node_class: str | None
    node_pool: str
    task_group: str
    task: str
    run_for: float | None  # batch: seconds an allocation runs before it completes
    priority: int = 50
    stopped: bool = False
    create_index: int = 0
    modify_index: int = 0


class JobTables(StateBase):
    alloc_start_seconds: float

    if TYPE_CHECKING:
        # allocations.py
        def _allocs_changed(self, allocs: list[SimAlloc]) -> int: ...

        def _stop_allocs(self, allocs: list[SimAlloc], why: str) -> None: ...

        def _evals_changed(self, evals: list[SimEval]) -> int: ...

        def _blocked_eval(self, job: SimJob) -> SimEval | None: ...

        def _block(self, job: SimJob, unplaced: int, metric: SimMetric) -> None: ...

    def run_job(
        self,
        job_id: str,
        count: int = 1,
        cpu_mhz: int = 100,
        memory_mb: int = 128,
        type: str = "service",
        datacenters: Iterable[str] = ("*",),
        node_class: str | None = None,
        node_pool: str = "default",
        *,
        namespace: str = "default",
        run_for: float | None = None,
        task_group: str | None = None,
    ) -> SimJob:
        """Register (or update) a job; placement happens at once where there is room."""
        if type not in ("service", "batch", "system"):
            raise ValueError(f"type: {type!r} is not one of service, batch, system")
        self.tick()
        self._t = self.now()
        job = SimJob(
            id=job_id,
            namespace=namespace,
            type=type,
            count=count,
            cpu_mhz=cpu_mhz,
            memory_mb=memory_mb,
            datacenters=tuple(datacenters),
            node_class=node_class,
            node_pool=node_pool,
            task_group=task_group or job_id,
            task=job_id,
            run_for=run_for,
        )
        previous = self.jobs.get((namespace, job_id))
        self.jobs[(namespace, job_id)] = job
        self._job_changed(job, previous)
        self._schedule()
        self.tick()
        return job

    def stop_job(self, job_id: str, namespace: str = "default") -> None:
        """Deregister the job: its allocations stop, its blocked evaluation is canceled."""
        self.tick()
        job = self.jobs.get((namespace, job_id))
        if job is None:
            return
        self._t = self.now()
        job.stopped = True
        self._job_changed(job, job)
        self._stop_allocs(
            [a for a in self._job_allocs(job) if not a.terminal], "alloc not needed due to job stop"
        )
        blocked = self._blocked_eval(job)
        if blocked is not None:
            blocked.status = "canceled"
            blocked.status_description = "job was deregistered"
            self._evals_changed([blocked])
        self._schedule()
        self.tick()

    def _job_changed(self, job: SimJob, previous: SimJob | None) -> None:
        idx = self._commit("jobs", [(job.id, job.namespace, "")])
        job.create_index = previous.create_index if previous else idx
        job.modify_index = idx

    def _job_allocs(self, job: SimJob) -> list[SimAlloc]:
        return [
            a for a in self.allocs.values() if a.job_id == job.id and a.namespace == job.namespace
        ]

    # ------------------------------------------------------------ the scheduler

    def _usage(self) -> dict[str, list[int]]:
        used: dict[str, list[int]] = {nid: [0, 0] for nid in self.nodes}
        for a in self.allocs.values():
            if a.live and a.node_id in used:
                used[a.node_id][0] += a.cpu_mhz
                used[a.node_id][1] += a.memory_mb
        return used

    @staticmethod
    def _dc_match(job: SimJob, dc: str) -> bool:
        return any(fnmatch.fnmatchcase(dc, pattern) for pattern in job.datacenters)

    def _ready_nodes(self) -> list[SimNode]:
        return sorted(
            (n for n in self.nodes.values() if n.status == NODE_READY),
            key=lambda n: (n.name, n.id),
        )

    def _select(
        self, job: SimJob, used: dict[str, list[int]], metric: SimMetric | None
    ) -> SimNode | None:
        """Bin-pack: the feasible node with room that ends up fullest (ties: by name)."""
        best: tuple[float, str, str, SimNode] | None = None
        for node in self._ready_nodes():
            if node.node_pool != job.node_pool and job.node_pool != "all":
                continue
            if metric is not None:
                metric.nodes_in_pool += 1
            if (
                node.eligibility != "eligible"
                or node.drain is not None
                or not self._dc_match(job, node.datacenter)
            ):
                continue
            if metric is not None:
                metric.nodes_evaluated += 1
            if job.node_class is not None and node.node_class != job.node_class:
                if metric is not None:
                    metric.nodes_filtered += 1
                    metric.class_filtered[node.node_class] = (
                        metric.class_filtered.get(node.node_class, 0) + 1
                    )
                    metric.constraint_filtered["${node.class}"] = (
                        metric.constraint_filtered.get("${node.class}", 0) + 1
                    )
                continue
            cpu, mem = used[node.id]
            dimension = (
                "cpu"
                if cpu + job.cpu_mhz > node.allocatable_cpu
                else "memory"
                if mem + job.memory_mb > node.allocatable_memory
                else ""
            )
            if dimension:
                if metric is not None:
                    metric.nodes_exhausted += 1
                    metric.dimension_exhausted[dimension] = (
                        metric.dimension_exhausted.get(dimension, 0) + 1
                    )
                    if node.node_class:
                        metric.class_exhausted[node.node_class] = (
                            metric.class_exhausted.get(node.node_class, 0) + 1
                        )
                continue
            score = (cpu + job.cpu_mhz) / max(1, node.allocatable_cpu) + (
                mem + job.memory_mb
            ) / max(1, node.allocatable_memory)
            key = (-score, node.name, node.id, node)
            if best is None or key[:3] < best[:3]:
                best = key
        return best[3] if best else None

    def _place(self, job: SimJob, node: SimNode, name_index: int, eval_id: str) -> SimAlloc:
        alloc = SimAlloc(
            id=self.new_id(),
            namespace=job.namespace,
            job_id=job.id,
            job_type=job.type,
            task_group=job.task_group,
            task=job.task,
            name=f"{job.id}.{job.task_group}[{name_index}]",
            name_index=name_index,
            node_id=node.id,
            node_name=node.name,
            cpu_mhz=job.cpu_mhz,
            memory_mb=job.memory_mb,
            eval_id=eval_id,
            create_index=0,
            modify_index=0,
            create_time=self._t,
            modify_time=self._t,
        )
        self.allocs[alloc.id] = alloc
        self._at(self._t + self.alloc_start_seconds, "alloc_running", alloc.id)
        return alloc

    def _schedule(self) -> None:
        """Bring every job's placements in line with its count; block what does not fit."""
        used = self._usage()
        for key in sorted(self.jobs):
            job = self.jobs[key]
            if job.stopped:
                continue
            if job.type == "system":
                self._schedule_system(job, used)
            else:
                self._schedule_counted(job, used)

    def _schedule_system(self, job: SimJob, used: dict[str, list[int]]) -> None:
        have = {a.node_id for a in self._job_allocs(job) if a.live}
        placed: list[SimAlloc] = []
        for node in self._ready_nodes():
            if node.id in have or node.eligibility != "eligible" or node.drain is not None:
                continue
            if node.node_pool != job.node_pool and job.node_pool != "all":
                continue
            if not self._dc_match(job, node.datacenter):
                continue
            if job.node_class is not None and node.node_class != job.node_class:
                continue
            cpu, mem = used[node.id]
            if (
                cpu + job.cpu_mhz > node.allocatable_cpu
                or mem + job.memory_mb > node.allocatable_memory
            ):
                continue
            placed.append(self._place(job, node, 0, ""))
            used[node.id][0] += job.cpu_mhz
            used[node.id][1] += job.memory_mb
        self._allocs_changed(placed)

    def _schedule_counted(self, job: SimJob, used: dict[str, list[int]]) -> None:
        allocs = self._job_allocs(job)
        live = sorted((a for a in allocs if a.live), key=lambda a: a.name_index)
        done = [a for a in allocs if a.client_status == "complete" and a.desired_status == "run"]
        if len(live) > job.count:
            # Scaled down: stop the highest-numbered allocations first.
            self._stop_allocs(live[job.count :], "alloc not needed due to job update")
            live = live[: job.count]
        taken = {a.name_index for a in live} | {a.name_index for a in done}
        free = [i for i in range(job.count) if i not in taken]
        blocked = self._blocked_eval(job)
        placed: list[SimAlloc] = []
        metric: SimMetric | None = None
        for name_index in free:
            node = self._select(job, used, None)
            if node is None:
                metric = SimMetric(node_pool=job.node_pool)
                self._select(job, used, metric)  # again, to account for why
                break
            placed.append(self._place(job, node, name_index, blocked.id if blocked else ""))
            used[node.id][0] += job.cpu_mhz
            used[node.id][1] += job.memory_mb
        self._allocs_changed(placed)
        unplaced = len(free) - len(placed)
        if unplaced > 0:
            assert metric is not None
            self._block(job, unplaced, metric)
        elif blocked is not None:
            blocked.status = "complete"
            blocked.queued_allocations = {job.task_group: 0}
            self._evals_changed([blocked])
