"""Typed views of Nomad's JSON answers (PascalCase in, snake_case out).

Parsing is tolerant of fields it does not know (Nomad adds them between
releases) and strict about the ones it needs: a missing or mistyped required
field raises ProtocolError naming the endpoint and the field. Go writes nil
maps and slices as ``null``, so ``null`` reads as empty wherever a collection
is expected.

Times become POSIX seconds (floats): Nomad mixes RFC 3339 strings (drain
times), Unix nanoseconds (CreateTime/ModifyTime) and Unix seconds
(StatusUpdatedAt). Go's zero time ("0001-01-01T00:00:00Z") reads as None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from reconciler.nomad.errors import ProtocolError

T = TypeVar("T")

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class QueryResult(Generic[T]):
    """A read's value with the X-Nomad-Index it was answered at (for blocking queries)."""

    value: T
    index: int


# ---------------------------------------------------------------- variables


@dataclass(frozen=True, slots=True)
class VariableLock:
    """A variable's lock. ``id`` is only shown to its holder and to management tokens."""

    id: str | None
    ttl: float | None  # seconds
    lock_delay: float | None  # seconds


@dataclass(frozen=True, slots=True)
class VariableMeta:
    """A variable without its items: what ``GET /v1/vars`` lists."""

    path: str
    namespace: str
    create_index: int
    modify_index: int
    create_time: float | None = None
    modify_time: float | None = None
    lock: VariableLock | None = None

    @property
    def lock_id(self) -> str | None:
        return self.lock.id if self.lock else None


@dataclass(frozen=True, slots=True)
class Variable:
    path: str
    namespace: str
    items: Mapping[str, str]
    create_index: int
    modify_index: int
    create_time: float | None = None
    modify_time: float | None = None
    lock: VariableLock | None = None

    @property
    def lock_id(self) -> str | None:
        return self.lock.id if self.lock else None


# ---------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class LastDrain:
    """Node.LastDrain: the drain in progress, or the one that ended last.

    status: "draining", "complete" or "canceled"; meta: what the drain's
    requester attached (the reconciler marks its own drains there).
    """

    status: str
    meta: Mapping[str, str]
    started_at: float | None
    updated_at: float | None
    accessor_id: str = ""


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """One of Node.Events: what happened to the node, as Nomad recorded it (the last ten).

    subsystem: "Cluster", "Drain", "Driver", "Heartbeat", "Scheduler" or "Storage";
    message: Nomad's own text ("Node registered", "Node drain complete", ...).
    """

    message: str
    subsystem: str
    details: Mapping[str, str]
    timestamp: float | None
    create_index: int


@dataclass(frozen=True, slots=True)
class DrainStrategy:
    """Node.DrainStrategy while a drain is in progress (only in a full node read).

    deadline: seconds as requested (0: no deadline, negative: force);
    force_deadline: when remaining allocations will be stopped (None without one).
    """

    deadline: float
    ignore_system_jobs: bool
    force_deadline: float | None
    started_at: float | None


@dataclass(frozen=True, slots=True)
class NodeStub:
    """A client node as ``GET /v1/nodes`` lists it.

    cpu_mhz / memory_mb are what the scheduler may allocate: the node's
    resources minus what it reserves. They are 0 when the answer carried no
    resources (the list without ``?resources=true``).

    The list's stubs carry neither Meta nor DrainStrategy nor StatusUpdatedAt;
    those fields keep their defaults here and are filled by ``get_node``.
    """

    id: str
    name: str
    datacenter: str
    node_class: str
    node_pool: str
    status: str  # initializing | ready | down | disconnected
    eligibility: str  # eligible | ineligible
    drain: bool
    last_drain: LastDrain | None
    cpu_mhz: int
    memory_mb: int
    create_index: int
    modify_index: int
    status_description: str = ""
    address: str = ""
    version: str = ""
    cpu_total_mhz: int = 0
    memory_total_mb: int = 0
    reserved_cpu_mhz: int = 0
    reserved_memory_mb: int = 0
    # Only in a full node read (GET /v1/node/:id):
    meta: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    drain_strategy: DrainStrategy | None = None
    status_updated_at: float | None = None
    events: tuple[NodeEvent, ...] = ()

    @property
    def eligible(self) -> bool:
        return self.eligibility == "eligible"

    @property
    def drain_deadline_at(self) -> float | None:
        return self.drain_strategy.force_deadline if self.drain_strategy else None


# A full node read has the same shape with the optional fields filled.
Node = NodeStub


# ---------------------------------------------------------------- allocations


@dataclass(frozen=True, slots=True)
class Allocation:
    """An allocation; cpu_mhz / memory_mb are what it reserves on its node (0 if not reported)."""

    id: str
    node_id: str
    job_id: str
    job_type: str
    task_group: str
    client_status: str  # pending | running | complete | failed | lost | unknown
    desired_status: str  # run | stop | evict
    cpu_mhz: int
    memory_mb: int
    name: str = ""
    namespace: str = "default"
    node_name: str = ""
    desired_description: str = ""
    create_index: int = 0
    modify_index: int = 0
    create_time: float | None = None
    modify_time: float | None = None

    @property
    def is_live(self) -> bool:
        """Still holds its resources: not terminal on the client and not being stopped."""
        return self.client_status in ("pending", "running") and self.desired_status == "run"


# ---------------------------------------------------------------- evaluations


@dataclass(frozen=True, slots=True)
class TaskResources:
    cpu_mhz: int
    memory_mb: int


@dataclass(frozen=True, slots=True)
class AllocMetric:
    """Why a task group could not be placed (Evaluation.FailedTGAllocs[tg]).

    resources_exhausted maps task name to what one of its allocations asked for
    in the dimensions that ran out (Nomad fills only those).
    """

    nodes_evaluated: int
    nodes_filtered: int
    nodes_in_pool: int
    node_pool: str
    nodes_available: Mapping[str, int]  # datacenter -> ready nodes
    class_filtered: Mapping[str, int]
    constraint_filtered: Mapping[str, int]
    nodes_exhausted: int
    class_exhausted: Mapping[str, int]
    dimension_exhausted: Mapping[str, int]
    resources_exhausted: Mapping[str, TaskResources]
    coalesced_failures: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    id: str
    status: str  # blocked | pending | complete | failed | canceled
    job_id: str
    namespace: str = "default"
    type: str = ""
    triggered_by: str = ""
    status_description: str = ""
    class_eligibility: Mapping[str, bool] = field(default_factory=dict)
    escaped_computed_class: bool = False
    quota_limit_reached: str = ""
    queued_allocations: Mapping[str, int] = field(default_factory=dict)
    failed_tg_allocs: Mapping[str, AllocMetric] = field(default_factory=dict)
    create_index: int = 0
    modify_index: int = 0
    create_time: float | None = None
    modify_time: float | None = None

    @property
    def node_pool(self) -> str:
        for metric in self.failed_tg_allocs.values():
            if metric.node_pool:
                return metric.node_pool
        return "default"

    @property
    def datacenters(self) -> tuple[str, ...]:
        """Datacenters the scheduler considered (those with ready nodes), sorted."""
        dcs: set[str] = set()
        for metric in self.failed_tg_allocs.values():
            dcs.update(metric.nodes_available)
        return tuple(sorted(dcs))

    @property
    def queued(self) -> int:
        return sum(self.queued_allocations.values())

    def asked(self) -> TaskResources:
        """What one placement of each blocked task group asked for, summed over groups."""
        cpu = mem = 0
        for metric in self.failed_tg_allocs.values():
            for res in metric.resources_exhausted.values():
                cpu += res.cpu_mhz
                mem += res.memory_mb
        return TaskResources(cpu, mem)


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True, slots=True)
class JobShape:
    """What a job asks of a node, per task group: what sizing blocked work needs.

    ``groups`` maps task group to the summed CPU (MHz) and memory (MB) of its tasks;
    ``node_classes`` are the values a ``${node.class}`` equality constraint allows
    (job or group level; empty: any class).
    """

    id: str
    namespace: str
    datacenters: tuple[str, ...]
    node_pool: str
    groups: Mapping[str, TaskResources]
    node_classes: tuple[str, ...] = ()


# ---------------------------------------------------------------- parsing


class _Reader:
    """Pulls typed fields out of one JSON object, naming the endpoint on failure."""

    def __init__(self, where: str, obj: Any, what: str = "") -> None:
        if not isinstance(obj, dict):
            raise ProtocolError(
                f"{where}: expected a JSON object{f' for {what}' if what else ''}, got {_kind(obj)}"
            )
        self.where = where
        self.what = what
        self.obj = obj

    def _name(self, key: str) -> str:
        return f"{self.what}.{key}" if self.what else key

    def _check(self, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
        # bool is an int in Python but never in JSON's view of Nomad's fields.
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            ok = False
        else:
            ok = isinstance(value, kind)
        if not ok:
            name = kind.__name__ if isinstance(kind, type) else "number"
            raise ProtocolError(
                f"{self.where}: field {self._name(key)} should be a {name}, got {_kind(value)}"
            )
        return value

    def req(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.obj:
            raise ProtocolError(f"{self.where}: field {self._name(key)} is missing")
        return self._check(key, self.obj[key], kind)

    def opt(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.obj.get(key)
        if value is None:
            return default
        return self._check(key, value, kind)

    def child(self, key: str) -> _Reader | None:
        value = self.obj.get(key)
        if value is None:
            return None
        return _Reader(self.where, self._check(key, value, dict), self._name(key))

    def str_map(self, key: str) -> Mapping[str, str]:
        value = self.opt(key, dict, {})
        for k, v in value.items():
            if not isinstance(v, str):
                raise ProtocolError(
                    f"{self.where}: {self._name(key)}[{k!r}] should be a string, got {_kind(v)}"
                )
        return MappingProxyType(dict(value))

    def int_map(self, key: str) -> Mapping[str, int]:
        value = self.opt(key, dict, {})
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise ProtocolError(
                    f"{self.where}: {self._name(key)}[{k!r}] should be an int, got {_kind(v)}"
                )
        return MappingProxyType(dict(value))

    def int_(self, key: str, default: int = 0) -> int:
        return int(self.opt(key, (int, float), default))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def list_of(where: str, data: Any) -> list[Any]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise ProtocolError(f"{where}: expected a JSON array, got {_kind(data)}")
    return data


def rfc3339(where: str, value: Any, name: str) -> float | None:
    """An RFC 3339 timestamp (Go's time.Time in JSON) as POSIX seconds; zero time is None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{where}: field {name} should be an RFC 3339 time, got {_kind(value)}")
    if value.startswith("0001-01-01"):
        return None
    try:
        # Python 3.11 reads "Z" and truncates fractions beyond microseconds.
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise ProtocolError(f"{where}: field {name}: {value!r} is not an RFC 3339 time") from None


def _nanos(value: int) -> float | None:
    return value / 1e9 if value else None


def go_duration_seconds(where: str, value: Any, name: str) -> float | None:
    """A Go duration as Nomad writes it: a string ("15s", "1m0s") or integer nanoseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ProtocolError(f"{where}: field {name} should be a duration, got boolean")
    if isinstance(value, (int, float)):
        return value / 1e9
    if isinstance(value, str):
        try:
            return parse_go_duration(value)
        except ValueError as exc:
            raise ProtocolError(f"{where}: field {name}: {exc}") from None
    raise ProtocolError(f"{where}: field {name} should be a duration, got {_kind(value)}")


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Parse a Go duration ("90s", "1h30m", "1.5s", "300ms") into seconds."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if not s:
        raise ValueError(f"{text!r} is not a duration")
    total = 0.0
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        if j == i:
            raise ValueError(f"{text!r} is not a duration")
        number = s[i:j]
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        unit = s[j:k]
        if unit not in _UNITS:
            raise ValueError(f"{text!r} is not a duration (unit {unit!r})")
        try:
            total += float(number) * _UNITS[unit]
        except ValueError:
            raise ValueError(f"{text!r} is not a duration") from None
        i = k
    return sign * total


def format_go_duration(seconds: float) -> str:
    """Seconds as a Go duration string that Nomad parses exactly (whole milliseconds)."""
    ms = round(seconds * 1000)
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def _lock(r: _Reader) -> VariableLock | None:
    lk = r.child("Lock")
    if lk is None:
        return None
    lock_id = lk.opt("ID", str, "") or None
    return VariableLock(
        id=lock_id,
        ttl=go_duration_seconds(r.where, lk.obj.get("TTL"), "Lock.TTL"),
        lock_delay=go_duration_seconds(r.where, lk.obj.get("LockDelay"), "Lock.LockDelay"),
    )


def parse_variable(where: str, data: Any) -> Variable:
    r = _Reader(where, data)
    return Variable(
        path=r.req("Path", str),
        namespace=r.opt("Namespace", str, "default"),
        items=r.str_map("Items"),
        create_index=r.int_("CreateIndex"),
        modify_index=r.int_("ModifyIndex"),
        create_time=_nanos(r.int_("CreateTime")),
        modify_time=_nanos(r.int_("ModifyTime")),
        lock=_lock(r),
    )


def parse_variable_meta(where: str, data: Any) -> VariableMeta:
    r = _Reader(where, data)
    return VariableMeta(
        path=r.req("Path", str),
        namespace=r.opt("Namespace", str, "default"),
        create_index=r.int_("CreateIndex"),
        modify_index=r.int_("ModifyIndex"),
        create_time=_nanos(r.int_("CreateTime")),
        modify_time=_nanos(r.int_("ModifyTime")),
        lock=_lock(r),
    )


def _resources(r: _Reader) -> tuple[int, int, int, int]:
    """(cpu total, memory total, cpu reserved, memory reserved) from a node or its stub."""
    cpu = mem = rcpu = rmem = 0
    res = r.child("NodeResources")
    if res is not None:
        c = res.child("Cpu")
        m = res.child("Memory")
        cpu = c.int_("CpuShares") if c else 0
        mem = m.int_("MemoryMB") if m else 0
    else:
        # Pre-0.9 shape, still sent alongside by some versions.
        legacy = r.child("Resources")
        if legacy is not None:
            cpu = legacy.int_("CPU")
            mem = legacy.int_("MemoryMB")
    reserved = r.child("ReservedResources")
    if reserved is not None:
        c = reserved.child("Cpu")
        m = reserved.child("Memory")
        rcpu = c.int_("CpuShares") if c else 0
        rmem = m.int_("MemoryMB") if m else 0
    return cpu, mem, rcpu, rmem


def _last_drain(r: _Reader) -> LastDrain | None:
    ld = r.child("LastDrain")
    if ld is None:
        return None
    return LastDrain(
        status=ld.opt("Status", str, ""),
        meta=ld.str_map("Meta"),
        started_at=rfc3339(r.where, ld.obj.get("StartedAt"), "LastDrain.StartedAt"),
        updated_at=rfc3339(r.where, ld.obj.get("UpdatedAt"), "LastDrain.UpdatedAt"),
        accessor_id=ld.opt("AccessorID", str, ""),
    )


def _events(r: _Reader) -> tuple[NodeEvent, ...]:
    raw = r.opt("Events", list, None) or []
    events = []
    for i, item in enumerate(raw):
        e = _Reader(f"{r.where}: Events[{i}]", item)
        events.append(
            NodeEvent(
                message=e.opt("Message", str, ""),
                subsystem=e.opt("Subsystem", str, ""),
                details=e.str_map("Details"),
                timestamp=rfc3339(e.where, e.obj.get("Timestamp"), "Timestamp"),
                create_index=e.int_("CreateIndex"),
            )
        )
    return tuple(events)


def _drain_strategy(r: _Reader) -> DrainStrategy | None:
    ds = r.child("DrainStrategy")
    if ds is None:
        return None
    # DrainSpec is embedded in Go, so its fields sit at the top level of DrainStrategy.
    deadline = ds.opt("Deadline", (int, float), 0)
    return DrainStrategy(
        deadline=deadline / 1e9,
        ignore_system_jobs=ds.opt("IgnoreSystemJobs", bool, False),
        force_deadline=rfc3339(r.where, ds.obj.get("ForceDeadline"), "DrainStrategy.ForceDeadline")
        if deadline > 0
        else None,
        started_at=rfc3339(r.where, ds.obj.get("StartedAt"), "DrainStrategy.StartedAt"),
    )


def parse_node(where: str, data: Any) -> NodeStub:
    """A node list stub, or a full node (which adds Meta, DrainStrategy, StatusUpdatedAt)."""
    r = _Reader(where, data)
    cpu, mem, rcpu, rmem = _resources(r)
    strategy = _drain_strategy(r)
    status_updated = r.int_("StatusUpdatedAt")
    return NodeStub(
        id=r.req("ID", str),
        name=r.req("Name", str),
        datacenter=r.opt("Datacenter", str, ""),
        node_class=r.opt("NodeClass", str, ""),
        node_pool=r.opt("NodePool", str, "default"),
        status=r.req("Status", str),
        eligibility=r.opt("SchedulingEligibility", str, "eligible"),
        # Stubs say Drain; a full node says it with DrainStrategy.
        drain=bool(r.opt("Drain", bool, strategy is not None)),
        last_drain=_last_drain(r),
        cpu_mhz=max(0, cpu - rcpu),
        memory_mb=max(0, mem - rmem),
        create_index=r.int_("CreateIndex"),
        modify_index=r.int_("ModifyIndex"),
        status_description=r.opt("StatusDescription", str, ""),
        address=r.opt("Address", str, "") or r.opt("HTTPAddr", str, ""),
        version=r.opt("Version", str, ""),
        cpu_total_mhz=cpu,
        memory_total_mb=mem,
        reserved_cpu_mhz=rcpu,
        reserved_memory_mb=rmem,
        meta=r.str_map("Meta"),
        drain_strategy=strategy,
        status_updated_at=float(status_updated) if status_updated else None,
        events=_events(r),
    )


def parse_allocation(where: str, data: Any) -> Allocation:
    """An allocation list stub, or a full allocation (from a node's allocations)."""
    r = _Reader(where, data)
    cpu = mem = 0
    allocated = r.child("AllocatedResources")
    if allocated is not None:
        tasks = allocated.opt("Tasks", dict, {})
        for name in tasks:
            task = allocated.child("Tasks")
            assert task is not None
            t = task.child(name)
            if t is None:
                continue
            c = t.child("Cpu")
            m = t.child("Memory")
            cpu += c.int_("CpuShares") if c else 0
            mem += m.int_("MemoryMB") if m else 0
    job_type = r.opt("JobType", str, "")
    if not job_type:
        # A full allocation has no JobType; its embedded Job says it.
        job = r.child("Job")
        job_type = job.opt("Type", str, "") if job else ""
    return Allocation(
        id=r.req("ID", str),
        node_id=r.req("NodeID", str),
        job_id=r.opt("JobID", str, ""),
        job_type=job_type or "service",
        task_group=r.opt("TaskGroup", str, ""),
        client_status=r.req("ClientStatus", str),
        desired_status=r.req("DesiredStatus", str),
        cpu_mhz=cpu,
        memory_mb=mem,
        name=r.opt("Name", str, ""),
        namespace=r.opt("Namespace", str, "default"),
        node_name=r.opt("NodeName", str, ""),
        desired_description=r.opt("DesiredDescription", str, ""),
        create_index=r.int_("CreateIndex"),
        modify_index=r.int_("ModifyIndex"),
        create_time=_nanos(r.int_("CreateTime")),
        modify_time=_nanos(r.int_("ModifyTime")),
    )


def _alloc_metric(r: _Reader) -> AllocMetric:
    exhausted: dict[str, TaskResources] = {}
    res = r.child("ResourcesExhausted")
    if res is not None:
        for task in res.obj:
            t = res.child(task)
            if t is not None:
                exhausted[task] = TaskResources(t.int_("CPU"), t.int_("MemoryMB"))
    return AllocMetric(
        nodes_evaluated=r.int_("NodesEvaluated"),
        nodes_filtered=r.int_("NodesFiltered"),
        nodes_in_pool=r.int_("NodesInPool"),
        node_pool=r.opt("NodePool", str, ""),
        nodes_available=r.int_map("NodesAvailable"),
        class_filtered=r.int_map("ClassFiltered"),
        constraint_filtered=r.int_map("ConstraintFiltered"),
        nodes_exhausted=r.int_("NodesExhausted"),
        class_exhausted=r.int_map("ClassExhausted"),
        dimension_exhausted=r.int_map("DimensionExhausted"),
        resources_exhausted=MappingProxyType(exhausted),
        coalesced_failures=r.int_("CoalescedFailures"),
    )


def parse_evaluation(where: str, data: Any) -> Evaluation:
    r = _Reader(where, data)
    failed: dict[str, AllocMetric] = {}
    ftg = r.child("FailedTGAllocs")
    if ftg is not None:
        for tg in ftg.obj:
            m = ftg.child(tg)
            if m is not None:
                failed[tg] = _alloc_metric(m)
    eligibility = r.opt("ClassEligibility", dict, {})
    for k, v in eligibility.items():
        if not isinstance(v, bool):
            raise ProtocolError(f"{where}: ClassEligibility[{k!r}] should be a boolean")
    return Evaluation(
        id=r.req("ID", str),
        status=r.req("Status", str),
        job_id=r.opt("JobID", str, ""),
        namespace=r.opt("Namespace", str, "default"),
        type=r.opt("Type", str, ""),
        triggered_by=r.opt("TriggeredBy", str, ""),
        status_description=r.opt("StatusDescription", str, ""),
        class_eligibility=MappingProxyType(dict(eligibility)),
        escaped_computed_class=r.opt("EscapedComputedClass", bool, False),
        quota_limit_reached=r.opt("QuotaLimitReached", str, ""),
        queued_allocations=r.int_map("QueuedAllocations"),
        failed_tg_allocs=MappingProxyType(failed),
        create_index=r.int_("CreateIndex"),
        modify_index=r.int_("ModifyIndex"),
        create_time=_nanos(r.int_("CreateTime")),
        modify_time=_nanos(r.int_("ModifyTime")),
    )


def parse_job(where: str, data: Any) -> JobShape:
    r = _Reader(where, data, "job")
    groups: dict[str, TaskResources] = {}
    classes = _class_constraints(where, r.opt("Constraints", list, []))
    for i, g in enumerate(list_of(where, r.obj.get("TaskGroups"))):
        gr = _Reader(where, g, f"TaskGroups[{i}]")
        cpu = mem = 0
        for j, t in enumerate(list_of(where, gr.obj.get("Tasks"))):
            res = _Reader(where, t, f"TaskGroups[{i}].Tasks[{j}]").child("Resources")
            if res is not None:
                cpu += res.int_("CPU")
                mem += res.int_("MemoryMB")
        groups[gr.req("Name", str)] = TaskResources(cpu, mem)
        classes += _class_constraints(where, gr.opt("Constraints", list, []))
    return JobShape(
        id=r.req("ID", str),
        namespace=r.opt("Namespace", str, "default"),
        datacenters=tuple(r.opt("Datacenters", list, [])),
        node_pool=r.opt("NodePool", str, "") or "default",
        groups=MappingProxyType(groups),
        node_classes=tuple(classes),
    )


def _class_constraints(where: str, constraints: list[Any]) -> tuple[str, ...]:
    out = []
    for c in constraints:
        cr = _Reader(where, c, "Constraint")
        if cr.opt("LTarget", str, "") == "${node.class}" and cr.opt("Operand", str, "=") in (
            "=",
            "==",
            "is",
        ):
            out.append(cr.opt("RTarget", str, ""))
    return tuple(out)
