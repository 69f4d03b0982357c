"""The Nomad simulator's world: variables, locks, ACLs, nodes, jobs, allocations, evaluations.

Pure state on a clock, no I/O: the HTTP server reads and writes it, the
simulation advances it with ``tick()``. It keeps what the reconciler can
observe of real Nomad: a raft-like index that grows on every write, per-table
indexes for blocking queries, check-and-set conflicts, lock TTLs and lock
delay, ACL denials, nodes that initialize, go down when heartbeats stop, and
drains that take time, migrate allocations and honour their deadline.
"""

from __future__ import annotations

import fnmatch
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.clock import Clock


class SimError(Exception):
    """An answer Nomad gives with an HTTP error status."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        self.status = status
        self.message = message
        self.body = body
        super().__init__(f"{status}: {message}")


# ---------------------------------------------------------------- records


@dataclass
class SimLock:
    id: str
    ttl: float
    lock_delay: float
    expires_at: float


@dataclass
class SimVariable:
    namespace: str
    path: str
    items: dict[str, str]
    create_index: int
    modify_index: int
    create_time: float
    modify_time: float
    lock: SimLock | None = None
    lock_free_at: float = 0.0  # lock-delay after a lapse

    def meta_json(self) -> dict[str, Any]:
        return {
            "Namespace": self.namespace,
            "Path": self.path,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
            "CreateTime": int(self.create_time * 1e9),
            "ModifyTime": int(self.modify_time * 1e9),
        }

    def to_json(self) -> dict[str, Any]:
        out = self.meta_json() | {"Items": dict(self.items)}
        if self.lock is not None:
            out["Lock"] = {
                "ID": self.lock.id,
                "TTL": f"{int(self.lock.ttl)}s",
                "LockDelay": f"{int(self.lock.lock_delay)}s",
            }
        return out


@dataclass
class SimDrain:
    deadline: float  # seconds; <= 0: none
    ignore_system_jobs: bool
    started_at: float
    force_at: float | None


@dataclass
class SimNode:
    id: str
    name: str
    datacenter: str
    node_class: str
    node_pool: str
    meta: dict[str, str]
    cpu_mhz: int
    memory_mb: int
    status: str
    status_updated_at: float
    create_index: int
    modify_index: int
    ready_at: float
    eligibility: str = "eligible"
    drain: SimDrain | None = None
    last_drain: dict[str, Any] | None = None
    heartbeat_lost_at: float | None = None


@dataclass
class SimAlloc:
    id: str
    job_id: str
    job_type: str
    task_group: str
    node_id: str
    cpu_mhz: int
    memory_mb: int
    create_index: int
    modify_index: int
    client_status: str = "running"
    desired_status: str = "run"
    migrate_at: float | None = None

    @property
    def live(self) -> bool:
        return self.desired_status == "run" and self.client_status in ("pending", "running")


@dataclass
class SimJob:
    id: str
    type: str
    count: int
    cpu_mhz: int
    memory_mb: int
    datacenters: tuple[str, ...]
    node_class: str | None
    node_pool: str
    namespace: str = "default"


@dataclass
class SimEval:
    id: str
    job_id: str
    status: str
    node_pool: str
    queued: int
    create_index: int
    modify_index: int
    cpu_mhz: int = 0
    memory_mb: int = 0


@dataclass
class Policy:
    """A token's rights: variable path globs with capabilities, and node access."""

    variables: dict[str, set[str]] = field(
        default_factory=dict
    )  # glob -> {read, write, list, destroy}
    node: str = "deny"  # deny | read | write
    management: bool = False

    def can_var(self, path: str, capability: str) -> bool:
        if self.management:
            return True
        return any(
            fnmatch.fnmatchcase(path, glob) and capability in caps
            for glob, caps in self.variables.items()
        )

    def can_node(self, write: bool) -> bool:
        if self.management:
            return True
        return self.node == "write" or (self.node == "read" and not write)


# ---------------------------------------------------------------- the state


class NomadState:
    TABLES = ("vars", "nodes", "allocs", "evals")

    def __init__(
        self,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        heartbeat_timeout: float = 30.0,
        init_seconds: float = 5.0,
        migrate_seconds: float = 10.0,
        acl: bool = False,
    ) -> None:
        self.clock = clock
        self.rng = rng or random.Random(0)
        self.heartbeat_timeout = heartbeat_timeout
        self.init_seconds = init_seconds
        self.migrate_seconds = migrate_seconds
        self.acl_enabled = acl
        self.tokens: dict[str, Policy] = {}
        self.index = 1
        self.table_index = dict.fromkeys(self.TABLES, 1)
        self.variables: dict[tuple[str, str], SimVariable] = {}
        self.nodes: dict[str, SimNode] = {}
        self.allocs: dict[str, SimAlloc] = {}
        self.evals: dict[str, SimEval] = {}
        self.jobs: dict[str, SimJob] = {}
        self.listeners: list[Callable[[], None]] = []

    # ------------------------------------------------------------ plumbing

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _bump(self, *tables: str) -> int:
        self.index += 1
        for t in tables:
            self.table_index[t] = self.index
        for listener in list(self.listeners):
            listener()
        return self.index

    def authorize(self, token: str | None) -> Policy:
        if not self.acl_enabled:
            return Policy(management=True)
        policy = self.tokens.get(token or "")
        if policy is None:
            raise SimError(403, "Permission denied")
        return policy

    def add_token(self, policy: Policy) -> str:
        secret = self.new_id()
        self.tokens[secret] = policy
        return secret

    # ------------------------------------------------------------ variables

    def get_var(self, ns: str, path: str) -> SimVariable:
        var = self.variables.get((ns, path))
        if var is None:
            raise SimError(404, "variable not found")
        return var

    def list_vars(self, ns: str, prefix: str) -> list[SimVariable]:
        return sorted(
            (
                v
                for (n, p), v in self.variables.items()
                if (ns == "*" or n == ns) and p.startswith(prefix)
            ),
            key=lambda v: v.path,
        )

    def put_var(self, ns: str, path: str, items: Mapping[str, str], cas: int | None) -> SimVariable:
        current = self.variables.get((ns, path))
        if cas is not None:
            current_index = current.modify_index if current else 0
            if cas != current_index:
                raise SimError(409, "cas error", current.to_json() if current else None)
        if current is not None and current.lock is not None:
            raise SimError(409, "variable is locked", current.to_json())
        now = self.clock.now()
        index = self._bump("vars")
        if current is None:
            current = SimVariable(ns, path, dict(items), index, index, now, now)
            self.variables[(ns, path)] = current
        else:
            current.items = dict(items)
            current.modify_index = index
            current.modify_time = now
        return current

    def delete_var(self, ns: str, path: str, cas: int | None) -> None:
        current = self.variables.get((ns, path))
        if cas is not None and cas != (current.modify_index if current else 0):
            raise SimError(409, "cas error", current.to_json() if current else None)
        if current is not None:
            if current.lock is not None:
                raise SimError(409, "variable is locked", current.to_json())
            del self.variables[(ns, path)]
            self._bump("vars")

    def lock_acquire(self, ns: str, path: str, ttl: float, lock_delay: float) -> SimVariable:
        now = self.clock.now()
        var = self.variables.get((ns, path))
        if var is not None and (var.lock is not None or now < var.lock_free_at):
            raise SimError(409, "variable is already locked")
        index = self._bump("vars")
        if var is None:
            var = SimVariable(ns, path, {}, index, index, now, now)
            self.variables[(ns, path)] = var
        var.lock = SimLock(self.new_id(), ttl, lock_delay, now + ttl)
        var.modify_index = index
        return var

    def lock_renew(self, ns: str, path: str, lock_id: str) -> SimVariable:
        var = self.variables.get((ns, path))
        if var is None or var.lock is None or var.lock.id != lock_id:
            raise SimError(409, "lock is not held by this ID")
        var.lock.expires_at = self.clock.now() + var.lock.ttl
        return var

    def lock_release(self, ns: str, path: str, lock_id: str) -> SimVariable:
        var = self.variables.get((ns, path))
        if var is None or var.lock is None or var.lock.id != lock_id:
            raise SimError(409, "lock is not held by this ID")
        var.lock = None
        var.modify_index = self._bump("vars")
        return var

    # ------------------------------------------------------------ nodes

    def register_node(
        self,
        name: str,
        *,
        datacenter: str = "dc1",
        node_class: str = "",
        node_pool: str = "default",
        meta: Mapping[str, str] | None = None,
        cpu_mhz: int = 4000,
        memory_mb: int = 4096,
    ) -> str:
        now = self.clock.now()
        index = self._bump("nodes")
        node = SimNode(
            id=self.new_id(),
            name=name,
            datacenter=datacenter,
            node_class=node_class,
            node_pool=node_pool,
            meta=dict(meta or {}),
            cpu_mhz=cpu_mhz,
            memory_mb=memory_mb,
            status="initializing",
            status_updated_at=now,
            create_index=index,
            modify_index=index,
            ready_at=now + self.init_seconds,
        )
        self.nodes[node.id] = node
        return node.id

    def node_lost(self, name: str) -> None:
        """The VM behind these nodes is gone: heartbeats stop now."""
        now = self.clock.now()
        for node in self.nodes.values():
            if node.name == name and node.status != "down" and node.heartbeat_lost_at is None:
                node.heartbeat_lost_at = now

    def get_node(self, node_id: str) -> SimNode:
        node = self.nodes.get(node_id)
        if node is None:
            raise SimError(404, "node not found")
        return node

    def _touch(self, node: SimNode) -> None:
        node.modify_index = self._bump("nodes")

    def set_eligibility(self, node_id: str, eligible: bool) -> None:
        node = self.get_node(node_id)
        if node.drain is not None and eligible:
            raise SimError(
                400, "can not set node's scheduling eligibility to eligible: node is draining"
            )
        node.eligibility = "eligible" if eligible else "ineligible"
        self._touch(node)
        if eligible:
            self._retry_blocked()

    def drain(
        self,
        node_id: str,
        spec: Mapping[str, Any] | None,
        mark_eligible: bool,
        meta: Mapping[str, str] | None,
    ) -> None:
        node = self.get_node(node_id)
        now = self.clock.now()
        if spec is None:
            if node.drain is not None:
                node.drain = None
                if node.last_drain is not None:
                    node.last_drain |= {"Status": "canceled", "UpdatedAt": now}
            if mark_eligible:
                node.eligibility = "eligible"
            self._touch(node)
            self._retry_blocked()
            return
        deadline = float(spec.get("Deadline") or 0) / 1e9
        force_at = now + deadline if deadline > 0 else (now if deadline < 0 else None)
        node.drain = SimDrain(deadline, bool(spec.get("IgnoreSystemJobs")), now, force_at)
        node.eligibility = "ineligible"
        node.last_drain = {
            "Status": "draining",
            "StartedAt": now,
            "UpdatedAt": now,
            "AccessorID": "",
            "Meta": dict(meta or {}),
        }
        for alloc in self._live_on(node.id):
            if alloc.job_type != "system":
                alloc.migrate_at = now + self.migrate_seconds
        self._touch(node)

    def purge_node(self, node_id: str) -> None:
        node = self.get_node(node_id)
        for alloc in self._live_on(node.id):
            self._stop_alloc(alloc, "lost")
        del self.nodes[node_id]
        self._bump("nodes", "allocs")

    # ------------------------------------------------------------ jobs and allocations

    def run_job(
        self,
        job_id: str,
        *,
        count: int = 1,
        cpu_mhz: int = 500,
        memory_mb: int = 256,
        type: str = "service",
        datacenters: tuple[str, ...] = ("*",),
        node_class: str | None = None,
        node_pool: str = "default",
    ) -> None:
        self.jobs[job_id] = SimJob(
            job_id, type, count, cpu_mhz, memory_mb, datacenters, node_class, node_pool
        )
        self._reconcile_job(self.jobs[job_id])

    def stop_job(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        for alloc in list(self.allocs.values()):
            if alloc.job_id == job_id and alloc.live:
                self._stop_alloc(alloc, "complete")
        for ev in self.evals.values():
            if ev.job_id == job_id and ev.status == "blocked":
                ev.status = "canceled"
                ev.modify_index = self.index + 1
        self._bump("allocs", "evals")

    def _live_on(self, node_id: str) -> list[SimAlloc]:
        return [a for a in self.allocs.values() if a.node_id == node_id and a.live]

    def _stop_alloc(self, alloc: SimAlloc, client_status: str) -> None:
        alloc.desired_status = "stop"
        alloc.client_status = client_status
        alloc.migrate_at = None
        alloc.modify_index = self.index + 1

    def _fits(self, node: SimNode, job: SimJob) -> bool:
        if node.status != "ready" or node.eligibility != "eligible" or node.drain is not None:
            return False
        if job.node_pool not in ("all", node.node_pool):
            return False
        if job.node_class is not None and node.node_class != job.node_class:
            return False
        if "*" not in job.datacenters and node.datacenter not in job.datacenters:
            return False
        live = self._live_on(node.id)
        cpu = sum(a.cpu_mhz for a in live) + job.cpu_mhz
        mem = sum(a.memory_mb for a in live) + job.memory_mb
        return cpu <= node.cpu_mhz and mem <= node.memory_mb

    def _place(self, job: SimJob, node: SimNode) -> None:
        index = self.index + 1
        alloc = SimAlloc(
            id=self.new_id(),
            job_id=job.id,
            job_type=job.type,
            task_group="group",
            node_id=node.id,
            cpu_mhz=job.cpu_mhz,
            memory_mb=job.memory_mb,
            create_index=index,
            modify_index=index,
        )
        self.allocs[alloc.id] = alloc

    def _reconcile_job(self, job: SimJob) -> None:
        """Place what the job is missing; what cannot be placed becomes one blocked evaluation."""
        live = [a for a in self.allocs.values() if a.job_id == job.id and a.live]
        if job.type == "system":
            have = {a.node_id for a in live}
            for node in sorted(self.nodes.values(), key=lambda n: n.name):
                if node.id not in have and self._fits(node, job):
                    self._place(job, node)
            self._bump("allocs")
            return
        missing = job.count - len(live)
        for _ in range(max(0, missing)):
            candidates = [n for n in self.nodes.values() if self._fits(n, job)]
            if not candidates:
                break
            # Spread: the node with the most free memory first, then by name.
            free = {
                n.id: n.memory_mb - sum(a.memory_mb for a in self._live_on(n.id))
                for n in candidates
            }
            node = min(candidates, key=lambda n: (-free[n.id], n.name))
            self._place(job, node)
            missing -= 1
        blocked = [e for e in self.evals.values() if e.job_id == job.id and e.status == "blocked"]
        index = self.index + 1
        if missing > 0 and not blocked:
            ev = SimEval(
                self.new_id(),
                job.id,
                "blocked",
                job.node_pool,
                missing,
                index,
                index,
                job.cpu_mhz,
                job.memory_mb,
            )
            self.evals[ev.id] = ev
        for ev in blocked:
            if missing <= 0:
                ev.status = "complete"
            else:
                ev.queued = missing
            ev.modify_index = index
        self._bump("allocs", "evals")

    def _retry_blocked(self) -> None:
        for job in list(self.jobs.values()):
            self._reconcile_job(job)

    # ------------------------------------------------------------ time

    def tick(self) -> None:
        """Advance everything to the clock's now."""
        now = self.clock.now()
        changed = False
        for node in list(self.nodes.values()):
            if (
                node.status == "initializing"
                and now >= node.ready_at
                and node.heartbeat_lost_at is None
            ):
                node.status, node.status_updated_at = "ready", now
                self._touch(node)
                changed = True
            lost_at = node.heartbeat_lost_at
            heartbeat_expired = lost_at is not None and now >= lost_at + self.heartbeat_timeout
            if heartbeat_expired and node.status != "down":
                node.status, node.status_updated_at = "down", now
                for alloc in self._live_on(node.id):
                    self._stop_alloc(alloc, "lost")
                self._touch(node)
                changed = True
            if node.drain is not None:
                changed |= self._advance_drain(node, now)
        for var in self.variables.values():
            if var.lock is not None and now >= var.lock.expires_at:
                var.lock_free_at = now + var.lock.lock_delay
                var.lock = None
                var.modify_index = self._bump("vars")
        if changed:
            self._retry_blocked()

    def _advance_drain(self, node: SimNode, now: float) -> bool:
        drain = node.drain
        assert drain is not None
        forced = drain.force_at is not None and now >= drain.force_at
        moved = False
        for alloc in self._live_on(node.id):
            if alloc.job_type == "system":
                continue
            if forced or (alloc.migrate_at is not None and now >= alloc.migrate_at):
                self._stop_alloc(alloc, "complete")
                moved = True
        remaining = [a for a in self._live_on(node.id) if a.job_type != "system"]
        if not remaining:
            if not drain.ignore_system_jobs:
                for alloc in self._live_on(node.id):
                    self._stop_alloc(alloc, "complete")
            node.drain = None
            assert node.last_drain is not None
            node.last_drain |= {"Status": "complete", "UpdatedAt": now}
            self._touch(node)
            return True
        if moved:
            self._bump("allocs")
        return moved
