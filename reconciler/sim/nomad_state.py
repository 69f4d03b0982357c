"""A pure, clock-driven model of a Nomad cluster: what the reconciler can observe of one.

No I/O and no asyncio: ``nomad_server.py`` puts HTTP in front of it. Time comes
from a ``Clock``; randomness (IDs) from a seeded ``random.Random``, so a run is
reproducible. ``tick()`` brings the model up to ``clock.now()``, processing due
events in time order (so a big clock jump still drains node by node, alloc by
alloc, each at its own time).

What it models, after Nomad's own behaviour (nomad/state, nomad/*_endpoint.go):

* One raft-like index incremented by every write; each object has
  CreateIndex/ModifyIndex; per-table indexes ("variables", "nodes", "allocs",
  "evals") answer X-Nomad-Index. Listeners hear every change (table, key), which
  is how the server wakes blocking queries; the model stays synchronous.
* Variables with check-and-set, prefix listing, and locks. A lock lapses when
  not renewed within 2 x TTL (Nomad doubles the TTL as a grace period), and the
  variable stays locked for LockDelay after that; only then can another holder
  acquire it. A release frees it at once.
* ACLs (off by default): tokens with variable path rules, node read/write and
  namespace read-job; 403 "Permission denied" / "ACL token not found".
* Nodes register "initializing", turn "ready" after ``init_seconds``; when their
  heartbeats stop (``node_lost``) they go "down" after ``heartbeat_timeout`` and
  their allocations become "lost" (and are replaced elsewhere).
* Drains take time: per job, one service allocation at a time is migrated (its
  replacement placed elsewhere, the old one finishing ``migrate_seconds``
  later); batch allocations are waited for; system allocations go last unless
  ignored; at the deadline whatever is left is stopped. A finished drain clears
  DrainStrategy and records LastDrain (status, the drain's Meta), leaving the
  node ineligible, as Nomad does.
* Jobs place allocations by bin-packing on ready, eligible, non-draining nodes
  of the right datacenter, class and node pool with room; what cannot be placed
  becomes a blocked evaluation (with the resources asked), retried whenever
  capacity may have appeared.
"""

from __future__ import annotations

import fnmatch
import heapq
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.clock import Clock

TABLES = ("variables", "nodes", "allocs", "evals")

NODE_INITIALIZING = "initializing"
NODE_READY = "ready"
NODE_DOWN = "down"

LOCK_TTL_MIN = 10.0
LOCK_TTL_MAX = 24 * 3600.0
DEFAULT_LOCK_TTL = 15.0
DEFAULT_LOCK_DELAY = 15.0
# Nomad lets a lock run for twice its TTL before it lapses (a grace period for clients).
LOCK_TTL_GRACE = 2.0

_VAR_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")
_TERMINAL = ("complete", "failed", "lost")


class SimError(Exception):
    """An answer Nomad gives with an HTTP error status and a plain-text body."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        self.status = status
        self.message = message
        self.body = body
        super().__init__(f"{status}: {message}")


class SimConflict(SimError):
    """A 409 whose body is a variable: the current one, or Nomad's zero-valued placeholder."""

    def __init__(self, variable: SimVariable, message: str = "conflict") -> None:
        super().__init__(409, message)
        self.variable = variable


@dataclass(frozen=True)
class Change:
    """One object written at ``index``: what listeners (the server's watches) hear."""

    table: str
    key: str
    index: int
    namespace: str = ""
    node_id: str = ""


# ---------------------------------------------------------------- records


@dataclass
class SimLock:
    id: str
    ttl: float
    lock_delay: float
    expires_at: float
    lapsed: bool = False


@dataclass
class SimVariable:
    namespace: str
    path: str
    items: dict[str, str]
    create_index: int = 0
    modify_index: int = 0
    create_time: float = 0.0
    modify_time: float = 0.0
    lock: SimLock | None = None

    @property
    def is_zero(self) -> bool:
        return self.create_index == 0 and self.modify_index == 0


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

    @property
    def allocatable_cpu(self) -> int:
        return self.cpu_mhz - self.reserved_cpu_mhz

    @property
    def allocatable_memory(self) -> int:
        return self.memory_mb - self.reserved_memory_mb


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


# ---------------------------------------------------------------- ACL


@dataclass
class Policy:
    """What a token may do.

    variables: path glob -> capabilities among read, write, list, destroy, deny;
    the most specific matching glob decides, and "deny" anywhere among the
    matches wins. node: "deny", "read" or "write". read_job: the namespace
    capability that allocation and evaluation listings need.
    """

    variables: dict[str, set[str]] = field(default_factory=dict)
    node: str = "deny"
    read_job: bool = False
    management: bool = False

    def can_var(self, path: str, capability: str) -> bool:
        if self.management:
            return True
        matches = [
            (glob, caps) for glob, caps in self.variables.items() if fnmatch.fnmatchcase(path, glob)
        ]
        if not matches or any("deny" in caps for _, caps in matches):
            return False
        _, caps = max(matches, key=lambda m: len(m[0].replace("*", "")))
        return capability in caps

    def can_node(self, write: bool) -> bool:
        if self.management:
            return True
        return self.node == "write" or (self.node == "read" and not write)

    def can_read_job(self) -> bool:
        return self.management or self.read_job


MANAGEMENT = Policy(management=True)


# ---------------------------------------------------------------- the state


class NomadState:
    def __init__(
        self,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        heartbeat_timeout: float = 30.0,
        init_seconds: float = 5.0,
        migrate_seconds: float = 10.0,
        alloc_start_seconds: float = 2.0,
        acl: bool = False,
        region: str = "global",
    ) -> None:
        self.clock = clock
        self.rng = rng or random.Random(0)
        self.heartbeat_timeout = heartbeat_timeout
        self.init_seconds = init_seconds
        self.migrate_seconds = migrate_seconds
        self.alloc_start_seconds = alloc_start_seconds
        self.region = region
        self.acl_enabled = acl
        self.tokens: dict[str, Policy] = {}
        self.anonymous = Policy()
        self.index = 1
        self.table_index: dict[str, int] = dict.fromkeys(TABLES, 1)
        self.variables: dict[tuple[str, str], SimVariable] = {}
        self.nodes: dict[str, SimNode] = {}
        self.allocs: dict[str, SimAlloc] = {}
        self.evals: dict[str, SimEval] = {}
        self.jobs: dict[tuple[str, str], SimJob] = {}
        self.listeners: list[Callable[[Change], None]] = []
        self._events: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = 0
        self._t = clock.now()
        self._ticking = False
        self._addresses = 0

    # ------------------------------------------------------------ plumbing

    def now(self) -> float:
        """The model's time: the event being processed, else the clock's."""
        return self._t if self._ticking else max(self._t, self.clock.now())

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def subscribe(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``listener`` on every change; returns the function that unsubscribes."""
        self.listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)

        return unsubscribe

    def _commit(self, table: str, objects: Iterable[tuple[str, str, str]]) -> int:
        """Write objects (key, namespace, node_id) of one table at a new index."""
        self.index += 1
        idx = self.index
        self.table_index[table] = idx
        changes = [Change(table, key, idx, ns, node) for key, ns, node in objects]
        for change in changes:
            for listener in list(self.listeners):
                listener(change)
        return idx

    def _at(self, when: float, kind: str, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, kind, args))

    def tick(self) -> None:
        """Process every event due by ``clock.now()``, each at its own time."""
        if self._ticking:
            return
        self._ticking = True
        try:
            now = self.clock.now()
            while self._events and self._events[0][0] <= now:
                when, _, kind, args = heapq.heappop(self._events)
                self._t = max(self._t, when)
                getattr(self, f"_on_{kind}")(*args)
            self._t = max(self._t, now)
        finally:
            self._ticking = False

    def next_event_at(self) -> float | None:
        """When the next scheduled change happens (for drivers that jump the clock)."""
        return self._events[0][0] if self._events else None

    # ------------------------------------------------------------ ACL

    def add_token(self, policy: Policy, secret: str | None = None) -> str:
        """Register a token; returns its secret ID (what goes in X-Nomad-Token)."""
        secret = secret or self.new_id()
        self.tokens[secret] = policy
        return secret

    def authorize(self, token: str | None) -> Policy:
        """The policy a request's token carries (everything when ACLs are off)."""
        if not self.acl_enabled:
            return MANAGEMENT
        if not token:
            return self.anonymous
        policy = self.tokens.get(token)
        if policy is None:
            raise SimError(403, "ACL token not found")
        return policy

    # ------------------------------------------------------------ variables

    def _var_changed(self, var: SimVariable) -> int:
        return self._commit("variables", [(var.path, var.namespace, "")])

    @staticmethod
    def validate_path(path: str) -> None:
        """Nomad's variable path rules (structs.ValidatePath)."""
        if not path:
            raise SimError(400, "variable requires path")
        if not _VAR_PATH.match(path):
            raise SimError(400, f'invalid path "{path}"')
        parts = path.split("/")
        if parts[0] != "nomad":
            return
        if len(parts) == 1:
            raise SimError(400, '"nomad" is a reserved top-level directory path')
        if parts[1] in ("jobs", "sentinel") or (parts[1] == "job-templates" and len(parts) == 3):
            return
        raise SimError(
            400,
            'only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths '
            'under the top-level "nomad" directory',
        )

    def get_var(self, ns: str, path: str) -> SimVariable:
        self.tick()
        var = self.variables.get((ns, path))
        if var is None:
            raise SimError(404, "variable not found")
        return var

    def list_vars(self, ns: str, prefix: str = "") -> list[SimVariable]:
        """Variables under ``prefix`` in ``ns`` ("*": every namespace), by (namespace, path)."""
        self.tick()
        return [
            v
            for (vns, path), v in sorted(self.variables.items())
            if (ns == "*" or vns == ns) and path.startswith(prefix)
        ]

    def put_var(
        self,
        ns: str,
        path: str,
        items: Mapping[str, str],
        cas: int | None = None,
        lock_id: str | None = None,
    ) -> SimVariable:
        """Create or replace a variable's items (Nomad writes even when they are unchanged)."""
        self.tick()
        self.validate_path(path)
        if not items:
            raise SimError(400, "variable missing required Items object")
        if any(not isinstance(v, str) for v in items.values()):
            raise SimError(400, "variable items must be strings")
        existing = self.variables.get((ns, path))
        if cas is not None:
            if cas == 0 and existing is not None:
                raise SimConflict(existing)
            if cas != 0 and existing is None:
                raise SimConflict(SimVariable(ns, path, {}))
            if existing is not None and existing.modify_index != cas:
                raise SimConflict(existing)
        if existing is not None and existing.lock is not None and existing.lock.id != lock_id:
            raise SimConflict(SimVariable(ns, path, {}), "attempting to modify locked variable")
        now = self.now()
        var = existing or SimVariable(ns, path, {}, create_time=now)
        var.items = dict(items)
        var.modify_time = now
        self.variables[(ns, path)] = var
        idx = self._var_changed(var)
        if var.create_index == 0:
            var.create_index = idx
        var.modify_index = idx
        return var

    def delete_var(
        self, ns: str, path: str, cas: int | None = None, lock_id: str | None = None
    ) -> int:
        """Delete (a missing variable is fine without cas); returns the index answered."""
        self.tick()
        existing = self.variables.get((ns, path))
        if cas is not None:
            if cas == 0 and existing is None:
                return self.index
            if cas != 0 and existing is None:
                raise SimConflict(SimVariable(ns, path, {}))
            if existing is not None and existing.modify_index != cas:
                raise SimConflict(existing)
        if existing is None:
            return self.index
        if existing.lock is not None and existing.lock.id != lock_id:
            raise SimConflict(SimVariable(ns, path, {}), "attempting to modify locked variable")
        del self.variables[(ns, path)]
        return self._var_changed(existing)

    def lock_acquire(
        self,
        ns: str,
        path: str,
        ttl: float = DEFAULT_LOCK_TTL,
        lock_delay: float = DEFAULT_LOCK_DELAY,
        items: Mapping[str, str] | None = None,
    ) -> SimVariable:
        """Lock the variable (creating it if absent); 409 while any lock is on it."""
        self.tick()
        self.validate_path(path)
        if ttl < 0 or lock_delay < 0:
            raise SimError(400, "Lock delay and TTL must be positive")
        if not LOCK_TTL_MIN <= ttl <= LOCK_TTL_MAX:
            raise SimError(400, "TTL must be between 10 seconds and 24 hours")
        existing = self.variables.get((ns, path))
        if existing is not None and existing.lock is not None:
            raise SimConflict(SimVariable(ns, path, {}), "variable already holds a lock")
        now = self.now()
        var = existing or SimVariable(ns, path, {}, create_time=now)
        if items:
            var.items = dict(items)
        var.lock = SimLock(self.new_id(), ttl, lock_delay, now + LOCK_TTL_GRACE * ttl)
        var.modify_time = now
        self.variables[(ns, path)] = var
        idx = self._var_changed(var)
        if var.create_index == 0:
            var.create_index = idx
        var.modify_index = idx
        self._at(var.lock.expires_at, "lock_expire", ns, path, var.lock.id)
        return var

    def lock_renew(self, ns: str, path: str, lock_id: str) -> SimVariable:
        """Extend the holder's lease; a lapsed lock cannot be renewed. Not a write."""
        self.tick()
        var = self.variables.get((ns, path))
        if var is None:
            raise SimError(404, "variable doesn't exist")
        if var.lock is None:
            raise SimError(409, "variable doesn't hold a lock")
        if var.lock.id != lock_id or var.lock.lapsed:
            raise SimError(409, "attempting to modify locked variable")
        var.lock.expires_at = self.now() + LOCK_TTL_GRACE * var.lock.ttl
        self._at(var.lock.expires_at, "lock_expire", ns, path, lock_id)
        return var

    def lock_release(self, ns: str, path: str, lock_id: str) -> SimVariable:
        """Remove the lock now (no lock-delay follows a release); items stay."""
        self.tick()
        if not lock_id:
            raise SimError(400, "missing lock information")
        var = self.variables.get((ns, path))
        # Nomad's state store answers these two with plain errors, hence 500.
        if var is None:
            raise SimError(500, "variable doesn't exist")
        if var.lock is None:
            raise SimError(500, "variable doesn't hold a lock")
        if var.lock.id != lock_id:
            placeholder = SimVariable(ns, path, {})
            placeholder.lock = SimLock("", 0, 0, 0)
            raise SimConflict(placeholder)
        var.lock = None
        var.modify_time = self.now()
        var.modify_index = self._var_changed(var)
        return var

    def _on_lock_expire(self, ns: str, path: str, lock_id: str) -> None:
        var = self.variables.get((ns, path))
        lock = var.lock if var else None
        if lock is None or lock.id != lock_id or lock.lapsed or lock.expires_at > self._t:
            return  # released, renewed or replaced since
        lock.lapsed = True
        self._at(self._t + lock.lock_delay, "lock_free", ns, path, lock_id)

    def _on_lock_free(self, ns: str, path: str, lock_id: str) -> None:
        # Nomad's delay timer (nomad/locks.go, invalidateVariableLock) releases
        # whatever lock the variable holds when it fires: its release carries no
        # lock ID. So if the lapsed holder released during the delay and someone
        # acquired since, that newer lock is stripped as well, as here.
        var = self.variables.get((ns, path))
        if var is None or var.lock is None:
            return
        var.lock = None
        var.modify_time = self._t
        var.modify_index = self._var_changed(var)

    # ------------------------------------------------------------ nodes

    def _node_changed(self, *nodes: SimNode) -> int:
        idx = self._commit("nodes", [(n.id, "", n.id) for n in nodes])
        for n in nodes:
            n.modify_index = idx
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
            node.name, node.datacenter, node.node_class = name, datacenter, node_class
            node.node_pool, node.meta = node_pool, dict(meta or {})
            node.cpu_mhz, node.memory_mb, node.disk_mb = cpu_mhz, memory_mb, disk_mb
            node.reserved_cpu_mhz, node.reserved_memory_mb = reserved_cpu_mhz, reserved_memory_mb
        self._t = now
        self._set_status(node, NODE_INITIALIZING)
        node.heartbeating = True
        node.gen += 1
        idx = self._node_changed(node)
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
            self._node_changed(node)
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
        self._node_changed(node)
        self._lose_allocs(node, "alloc is lost since its node is down")
        if node.drain is not None:
            self._drain_progress(node)
        self._schedule()

    def _lose_allocs(self, node: SimNode, why: str) -> None:
        lost = [a for a in self._allocs_on(node.id) if not a.terminal]
        for a in lost:
            a.client_status = "lost"
            a.desired_status = "stop"
            a.desired_description = why
        self._allocs_changed(lost)

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
        """Nomad's Node.UpdateEligibility; returns the node's ModifyIndex (0: nothing to do)."""
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
        idx = self._node_changed(node)
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
            idx = self._node_changed(node)
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
            idx = self._node_changed(node)
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

    def _allocs_on(self, node_id: str) -> list[SimAlloc]:
        return sorted(
            (a for a in self.allocs.values() if a.node_id == node_id),
            key=lambda a: (a.job_id, a.name_index, a.create_index),
        )

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
        self._finish_drain(node)
        self._schedule()

    def _finish_drain(self, node: SimNode) -> None:
        node.drain = None
        node.status_updated_at = self._t
        if node.last_drain is not None:
            node.last_drain.status = "complete"
            node.last_drain.updated_at = self._t
        self._node_changed(node)

    def _on_alloc_stopped(self, alloc_id: str) -> None:
        alloc = self.allocs.get(alloc_id)
        if alloc is None or alloc.terminal:
            return
        alloc.client_status = "complete"
        self._allocs_changed([alloc])
        node = self.nodes.get(alloc.node_id)
        if node is not None and node.drain is not None:
            self._drain_progress(node)
        self._schedule()

    # ------------------------------------------------------------ jobs and allocations

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
        self.jobs[(namespace, job_id)] = job
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

    def _job_allocs(self, job: SimJob) -> list[SimAlloc]:
        return [
            a for a in self.allocs.values() if a.job_id == job.id and a.namespace == job.namespace
        ]

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

    # ------------------------------------------------------------ for tests and the demo

    def allocated(self, node_id: str) -> tuple[int, int]:
        """(cpu MHz, memory MB) held by live allocations on the node."""
        cpu = mem = 0
        for a in self.allocs.values():
            if a.node_id == node_id and a.live:
                cpu += a.cpu_mhz
                mem += a.memory_mb
        return cpu, mem
