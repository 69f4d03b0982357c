"""A real HTTP server (aiohttp) speaking Nomad's API over a ``NomadState``.

Same paths, methods, PascalCase JSON shapes, status codes and headers as Nomad
(command/agent/*_endpoint.go): errors are plain text ("Permission denied",
"variable not found", Nomad's 500 "node not found"), list and read answers
carry X-Nomad-Index, and ``?index=N&wait=5m`` really blocks until the watched
data changes past N or the wait (plus up to wait/16 of jitter, as Nomad adds)
runs out. Tokens come from X-Nomad-Token or ``Authorization: Bearer``.

Faults (``reconciler.sim.faults``) are looked up by ``"METHOD /v1/concrete/path"``
and also ``"* /v1/concrete/path"``; keys may use ``*`` as a glob, e.g.
``"GET /v1/nodes"``, ``"PUT /v1/var/*"``, ``"* /v1/node/*/drain"``, ``"*"``.
The most specific (longest) matching key wins. error_rate answers 500,
latency sleeps (real seconds), hang never answers.

Times: every moment of the world that goes on the wire (a node's StatusUpdatedAt,
its drain's and last drain's times, events, allocations', evaluations' and
variables' Create/ModifyTime) passes through the server's ``wire_time``, a
``TimeMap`` from the state's clock to the reader's: the same time by default;
for ``reconciler sim --speed`` the wall-clock moment (see ``Simulation``).
Durations (a drain's Deadline, a lock's TTL) are the world's own, both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import json
import logging
import random
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from reconciler.clock import TimeMap, same_time
from reconciler.sim.faults import Fault, FaultInjector
from reconciler.sim.nomad_state import (
    DEFAULT_LOCK_DELAY,
    DEFAULT_LOCK_TTL,
    Change,
    NomadState,
    Policy,
    SimAlloc,
    SimConflict,
    SimError,
    SimEval,
    SimJob,
    SimMetric,
    SimNode,
    SimVariable,
)
from reconciler.units import parse_duration  # Go durations, as Nomad parses `wait` and lock TTLs

log = logging.getLogger(__name__)

# structs.DefaultBlockingRPCQueryTime and MaxBlockingRPCQueryTime: both 5 minutes.
DEFAULT_WAIT = 300.0
MAX_WAIT = 300.0
NOMAD_VERSION = "1.9.3"
OS_NAME = "ubuntu"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------- wire formats


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 15s, 1m0s, 1h30m0s, 1.5s, 250ms."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{sign}{_trim(ns / size)}{unit}"
    h, rem = divmod(ns, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    secs = _trim(rem / 1e9)
    if h:
        return f"{sign}{h}h{m}m{secs}s"
    if m:
        return f"{sign}{m}m{secs}s"
    return f"{sign}{secs}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def rfc3339(ts: float | None, *, whole_seconds: bool = False) -> str:
    """Go's time.Time in JSON (RFC 3339, nanoseconds trimmed); None is Go's zero time."""
    if ts is None:
        return "0001-01-01T00:00:00Z"
    dt = datetime.fromtimestamp(int(ts) if whole_seconds else ts, UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond and not whole_seconds:
        text += "." + f"{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


def _nanos(ts: float) -> int:
    return round(ts * 1e9)


def variable_json(
    v: SimVariable, *, items: bool = True, lock: bool = False, at: TimeMap = same_time
) -> dict[str, Any]:
    """``at`` maps the world's times to the wire's (see the module doc), as in every ``*_json``."""
    out: dict[str, Any] = {
        "Namespace": v.namespace,
        "Path": v.path,
        "CreateIndex": v.create_index,
        "ModifyIndex": v.modify_index,
        "CreateTime": _nanos(at(v.create_time)),
        "ModifyTime": _nanos(at(v.modify_time)),
    }
    if items and v.items:
        out["Items"] = dict(v.items)
    if lock and v.lock is not None:
        out["Lock"] = {
            "ID": v.lock.id,
            "TTL": go_duration(v.lock.ttl),
            "LockDelay": go_duration(v.lock.lock_delay),
        }
    return out


def conflict_json(v: SimVariable, *, readable: bool, at: TimeMap = same_time) -> dict[str, Any]:
    """A 409's body, as makeVariablesApplyResponse builds it.

    A caller who may not read the variable gets its metadata only (a lock
    placeholder included, as a failed release has one); one who may gets the
    variable, lock included, or for a zero-valued placeholder just its
    namespace and path. Items and Lock are omitempty: absent, never null.
    """
    if not readable:
        out = variable_json(v, items=False, at=at)
        if v.lock is not None:  # VariableLock.MarshalJSON: a zero duration is ""
            out["Lock"] = {
                "ID": v.lock.id,
                "TTL": go_duration(v.lock.ttl) if v.lock.ttl else "",
                "LockDelay": go_duration(v.lock.lock_delay) if v.lock.lock_delay else "",
            }
        return out
    if v.is_zero:
        return variable_json(SimVariable(v.namespace, v.path, {}), items=False, at=at)
    return variable_json(v, items=True, lock=True, at=at)


def _last_drain_json(n: SimNode, at: TimeMap) -> dict[str, Any] | None:
    d = n.last_drain
    if d is None:
        return None
    return {
        "StartedAt": rfc3339(at(d.started_at), whole_seconds=True),
        "UpdatedAt": rfc3339(at(d.updated_at), whole_seconds=True),
        "Status": d.status,
        "AccessorID": d.accessor_id,
        "Meta": dict(d.meta) or None,
    }


def _resources_json(n: SimNode) -> tuple[dict[str, Any], dict[str, Any]]:
    node_resources = {
        "Cpu": {
            "CpuShares": n.cpu_mhz,
            "TotalCpuCores": max(1, n.cpu_mhz // 2000),
            "ReservableCpuCores": list(range(max(1, n.cpu_mhz // 2000))),
        },
        "Memory": {"MemoryMB": n.memory_mb},
        "Disk": {"DiskMB": n.disk_mb},
        "Devices": None,
        "NodeNetworks": [],
        "Networks": [],
        "MinDynamicPort": 20000,
        "MaxDynamicPort": 32000,
    }
    reserved = {
        "Cpu": {"CpuShares": n.reserved_cpu_mhz, "ReservedCpuCores": None},
        "Memory": {"MemoryMB": n.reserved_memory_mb},
        "Disk": {"DiskMB": 0},
        "Networks": {"ReservedHostPorts": ""},
    }
    return node_resources, reserved


def node_stub_json(
    n: SimNode, *, resources: bool, os_name: bool = False, at: TimeMap = same_time
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Address": n.address,
        "ID": n.id,
        "Datacenter": n.datacenter,
        "Name": n.name,
        "NodePool": n.node_pool,
        "NodeClass": n.node_class,
        "Version": NOMAD_VERSION,
        "Drain": n.drain is not None,
        "SchedulingEligibility": n.eligibility,
        "Status": n.status,
        "StatusDescription": n.status_description,
        "Drivers": {"exec": {"Detected": True, "Healthy": True}},
        "HostVolumes": None,
        "LastDrain": _last_drain_json(n, at),
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    }
    if resources:
        out["NodeResources"], out["ReservedResources"] = _resources_json(n)
    if os_name:  # Node.Stub: ?os=true adds this one attribute
        out["Attributes"] = {"os.name": OS_NAME}
    return out


def _computed_class(n: SimNode) -> str:
    """A stable digest of what makes nodes interchangeable to the scheduler.

    hashlib, not hash(): Python salts str hashes per process, so a run would not be
    reproducible from its seed.
    """
    key = "\x00".join((n.node_class, n.datacenter, n.node_pool)).encode()
    return f"v1:{int.from_bytes(hashlib.sha256(key).digest()[:8], 'big') % 10**18}"


def node_json(n: SimNode, *, at: TimeMap = same_time) -> dict[str, Any]:
    node_resources, reserved = _resources_json(n)
    drain = None
    if n.drain is not None:
        force_at = n.drain.force_at
        drain = {
            "Deadline": round(n.drain.deadline * 1e9) if n.drain.deadline >= 0 else -1,
            "IgnoreSystemJobs": n.drain.ignore_system_jobs,
            "ForceDeadline": rfc3339(
                at(force_at) if force_at is not None and n.drain.deadline > 0 else None
            ),
            "StartedAt": rfc3339(at(n.drain.started_at)),
        }
    return {
        "ID": n.id,
        "SecretID": "",
        "Datacenter": n.datacenter,
        "Name": n.name,
        "HTTPAddr": f"{n.address}:4646",
        "TLSEnabled": False,
        "Attributes": {
            "unique.hostname": n.name,
            "nomad.version": NOMAD_VERSION,
            "cpu.totalcompute": str(n.cpu_mhz),
            "memory.totalbytes": str(n.memory_mb * 1024 * 1024),
            "kernel.name": "linux",
            "os.name": OS_NAME,
        },
        "NodeResources": node_resources,
        "ReservedResources": reserved,
        "Links": {},
        "Meta": dict(n.meta),
        "NodeClass": n.node_class,
        "NodePool": n.node_pool,
        "ComputedClass": _computed_class(n),
        "DrainStrategy": drain,
        "SchedulingEligibility": n.eligibility,
        "Status": n.status,
        "StatusDescription": n.status_description,
        "StatusUpdatedAt": int(at(n.status_updated_at)),
        "Events": [
            {
                "Message": e.message,
                "Subsystem": e.subsystem,
                "Details": dict(e.details) or None,
                "Timestamp": rfc3339(at(e.timestamp)),
                "CreateIndex": e.create_index,
            }
            for e in n.events
        ],
        "Drivers": {"exec": {"Detected": True, "Healthy": True}},
        "HostVolumes": None,
        "LastDrain": _last_drain_json(n, at),
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    }


def _allocated_json(a: SimAlloc) -> dict[str, Any]:
    return {
        "Tasks": {
            a.task: {
                "Cpu": {"CpuShares": a.cpu_mhz, "ReservedCores": None},
                "Memory": {"MemoryMB": a.memory_mb, "MemoryMaxMB": 0},
                "Networks": None,
                "Devices": None,
            }
        },
        "TaskLifecycles": {a.task: None},
        "Shared": {"Networks": None, "DiskMB": 300, "Ports": None},
    }


def _alloc_common(a: SimAlloc, at: TimeMap) -> dict[str, Any]:
    return {
        "ID": a.id,
        "EvalID": a.eval_id,
        "Name": a.name,
        "Namespace": a.namespace,
        "NodeID": a.node_id,
        "NodeName": a.node_name,
        "JobID": a.job_id,
        "TaskGroup": a.task_group,
        "DesiredStatus": a.desired_status,
        "DesiredDescription": a.desired_description,
        "ClientStatus": a.client_status,
        "ClientDescription": a.client_description,
        "DesiredTransition": {
            "Migrate": True if a.desired_description.endswith("migrated") else None,
            "Reschedule": None,
            "ForceReschedule": None,
            "NoShutdownDelay": None,
        },
        "TaskStates": None,
        "DeploymentStatus": None,
        "FollowupEvalID": "",
        "NextAllocation": "",
        "RescheduleTracker": None,
        "PreemptedAllocations": None,
        "PreemptedByAllocation": "",
        "CreateIndex": a.create_index,
        "ModifyIndex": a.modify_index,
        "CreateTime": _nanos(at(a.create_time)),
        "ModifyTime": _nanos(at(a.modify_time)),
    }


def alloc_stub_json(a: SimAlloc, *, resources: bool, at: TimeMap = same_time) -> dict[str, Any]:
    out = _alloc_common(a, at) | {"JobType": a.job_type, "JobVersion": 0}
    if resources:
        out["AllocatedResources"] = _allocated_json(a)
    return out


def alloc_json(a: SimAlloc, *, at: TimeMap = same_time) -> dict[str, Any]:
    """A full allocation (GET /v1/node/:id/allocations): the Job rides along, JobType does not."""
    return _alloc_common(a, at) | {
        "Job": {
            "ID": a.job_id,
            "Name": a.job_id,
            "Namespace": a.namespace,
            "Type": a.job_type,
            "TaskGroups": [
                {
                    "Name": a.task_group,
                    "Tasks": [
                        {
                            "Name": a.task,
                            "Resources": {"CPU": a.cpu_mhz, "MemoryMB": a.memory_mb},
                        }
                    ],
                }
            ],
        },
        "AllocatedResources": _allocated_json(a),
        "AllocModifyIndex": a.modify_index,
    }


def _metric_json(m: SimMetric) -> dict[str, Any]:
    return {
        "NodesEvaluated": m.nodes_evaluated,
        "NodesFiltered": m.nodes_filtered,
        "NodesInPool": m.nodes_in_pool,
        "NodePool": m.node_pool,
        "NodesAvailable": dict(m.nodes_available),
        "ClassFiltered": dict(m.class_filtered) or None,
        "ConstraintFiltered": dict(m.constraint_filtered) or None,
        "NodesExhausted": m.nodes_exhausted,
        "ClassExhausted": dict(m.class_exhausted) or None,
        "DimensionExhausted": dict(m.dimension_exhausted) or None,
        "QuotaExhausted": None,
        "ResourcesExhausted": {
            task: {"CPU": r.get("CPU", 0), "MemoryMB": r.get("MemoryMB", 0), "DiskMB": 0}
            for task, r in m.resources_exhausted.items()
        }
        or None,
        "Scores": None,
        "ScoreMetaData": None,
        "AllocationTime": 12000,
        "CoalescedFailures": m.coalesced_failures,
    }


def job_json(j: SimJob) -> dict[str, Any]:
    """The fields of Nomad's job that a reader of its shape sees (one group, one task)."""
    constraints = (
        [{"LTarget": "${node.class}", "RTarget": j.node_class, "Operand": "="}]
        if j.node_class
        else None
    )
    return {
        "ID": j.id,
        "Name": j.id,
        "Namespace": j.namespace,
        "Type": j.type,
        "Priority": j.priority,
        "Datacenters": list(j.datacenters),
        "NodePool": j.node_pool,
        "Constraints": constraints,
        "Status": "dead" if j.stopped else "running",
        "Stop": j.stopped,
        "CreateIndex": j.create_index,
        "ModifyIndex": j.modify_index,
        "JobModifyIndex": j.modify_index,
        "TaskGroups": [
            {
                "Name": j.task_group,
                "Count": j.count,
                "Constraints": None,
                "Tasks": [
                    {
                        "Name": j.task,
                        "Driver": "docker",
                        "Resources": {"CPU": j.cpu_mhz, "MemoryMB": j.memory_mb, "DiskMB": 0},
                    }
                ],
            }
        ],
    }


def eval_json(e: SimEval, *, at: TimeMap = same_time) -> dict[str, Any]:
    return {
        "ID": e.id,
        "Namespace": e.namespace,
        "Priority": e.priority,
        "Type": e.type,
        "TriggeredBy": e.triggered_by,
        "JobID": e.job_id,
        "JobModifyIndex": 0,
        "NodeID": "",
        "NodeModifyIndex": 0,
        "DeploymentID": "",
        "Status": e.status,
        "StatusDescription": e.status_description,
        "Wait": 0,
        "WaitUntil": rfc3339(None),
        "NextEval": "",
        "PreviousEval": "",
        "BlockedEval": "",
        "RelatedEvals": None,
        "FailedTGAllocs": {tg: _metric_json(m) for tg, m in e.failed_tg_allocs.items()} or None,
        "ClassEligibility": dict(e.class_eligibility) or None,
        "QuotaLimitReached": "",
        "EscapedComputedClass": False,
        "AnnotatePlan": False,
        "QueuedAllocations": dict(e.queued_allocations) or None,
        "LeaderACL": "",
        "SnapshotIndex": 0,
        "CreateIndex": e.create_index,
        "ModifyIndex": e.modify_index,
        "CreateTime": _nanos(at(e.create_time)),
        "ModifyTime": _nanos(at(e.modify_time)),
    }


# ---------------------------------------------------------------- the server


def time_to_block(index: int, wait: float) -> float:
    """Seconds a query with ``?index`` and ``?wait`` is held (QueryOptions.TimeToBlock)."""
    if index == 0:
        return 0.0
    if wait <= 0:
        return DEFAULT_WAIT
    return min(wait, MAX_WAIT)


# Which X-Nomad-* headers an answer carries follows command/agent/http.go: a
# read sets its query meta (setMeta: index, last contact, known leader), also
# before a 404 it then returns; a write sets only setIndex; an error from the
# RPC and a plain answer such as /v1/status/leader set none.


def _meta(index: int | None, *, query: bool) -> dict[str, str]:
    headers = {"X-Nomad-Index": str(index)} if index is not None else {}
    if query:
        headers["X-Nomad-KnownLeader"] = "true"
        headers["X-Nomad-LastContact"] = "0"
    return headers


def _text(
    status: int, message: str, index: int | None = None, *, query: bool = False
) -> web.Response:
    """An error as Nomad writes it: plain text (Go adds the charset)."""
    return web.Response(
        status=status, text=message, content_type="text/plain", headers=_meta(index, query=query)
    )


def _json(
    body: Any,
    index: int | None = None,
    status: int = 200,
    *,
    query: bool = True,
    content_type: str = "application/json",
) -> web.Response:
    """A JSON answer; ``query`` adds the read's meta headers (a write has only the index)."""
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type=content_type,
        headers=_meta(index, query=query),
    )


def _write(body: Any, index: int | None) -> web.Response:
    return _json(body, index, query=False)


LOCK_OPERATIONS = ("lock-acquire", "lock-renew", "lock-release")


class NomadSimServer:
    """``await NomadSimServer(state).start()``; then ``.address`` is its http://127.0.0.1:PORT."""

    def __init__(
        self,
        state: NomadState,
        *,
        faults: FaultInjector | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rng: random.Random | None = None,
        tick_interval: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        wire_time: TimeMap = same_time,
    ) -> None:
        """``wire_time``: the state's times as the wire shows them (see the module doc)."""
        self.state = state
        self.wire_time = wire_time
        self.ssl_context = ssl_context  # serve https (and require client certs if it says so)
        self.faults = faults if faults is not None else FaultInjector()
        self.host = host
        self.port = port
        self.tick_interval = tick_interval
        self.requests: Counter[str] = Counter()  # "METHOD /v1/path" -> requests received
        self._rng = rng or random.Random(0)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        # The simulator's own control path, outside Nomad's API (see sim_host_action):
        # set by the simulation that owns the hosts.
        self.host_control: Callable[[str, str], Awaitable[object]] | None = None
        self.host_listing: Callable[[], list[dict[str, str]]] | None = None

    @property
    def address(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/v1/vars", self.list_vars)
        r.add_route("GET", "/v1/var/{path:.+}", self.get_var)
        r.add_route("PUT", "/v1/var/{path:.+}", self.put_var)
        r.add_route("POST", "/v1/var/{path:.+}", self.put_var)
        r.add_route("DELETE", "/v1/var/{path:.+}", self.delete_var)
        r.add_get("/v1/nodes", self.list_nodes)
        r.add_get("/v1/node/{id}", self.get_node)
        r.add_get("/v1/node/{id}/allocations", self.node_allocations)
        for method in ("PUT", "POST"):
            r.add_route(method, "/v1/node/{id}/drain", self.drain)
            r.add_route(method, "/v1/node/{id}/eligibility", self.eligibility)
            r.add_route(method, "/v1/node/{id}/purge", self.purge)
        r.add_post("/v1/client/metadata", self.apply_node_meta)
        r.add_get("/v1/allocations", self.list_allocations)
        r.add_get("/v1/evaluations", self.list_evaluations)
        r.add_get("/v1/job/{id}", self.get_job)
        r.add_get("/v1/status/leader", self.leader)
        r.add_get("/v1/status/peers", self.peers)
        r.add_get("/v1/sim/hosts", self.sim_hosts)
        r.add_post("/v1/sim/hosts/{name}/{action}", self.sim_host_action)
        self._closing.clear()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        if self.tick_interval:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def stop(self) -> None:
        self._closing.set()  # wakes blocking queries and hung requests
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> NomadSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick_forever(self) -> None:
        assert self.tick_interval
        while True:
            self.state.tick()
            await asyncio.sleep(self.tick_interval)

    # ------------------------------------------------------------ middleware

    def fault_for(self, method: str, path: str) -> Fault | None:
        """The most specific fault whose key matches this request (see the module doc)."""
        names = (f"{method} {path}", f"* {path}")
        faults = self.faults.faults
        for name in names:
            if name in faults:
                return faults[name]
        best: tuple[int, Fault] | None = None
        for key, fault in faults.items():
            matches = "*" in key and any(fnmatch.fnmatchcase(n, key) for n in names)
            if matches and (best is None or len(key) > best[0]):
                best = (len(key), fault)
        return best[1] if best else None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        fault = self.fault_for(request.method, request.path)
        if fault is not None:
            if fault.hang:
                await self._closing.wait()
                raise web.HTTPServiceUnavailable(text="simulator stopping")
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if self.faults.should_fail(fault):
                return _text(500, "simulated failure (fault injection)")
        self.state.tick()
        try:
            return await handler(request)
        except SimConflict as exc:
            policy = self._policy_or_none(request)
            readable = policy is not None and policy.can_var(exc.variable.path, "read")
            body = conflict_json(exc.variable, readable=readable, at=self.wire_time)
            # variableUpsert/Delete set the conflict's index before writing 409; a
            # lock operation's deferred setIndex runs after it and is lost. The
            # status goes out before the body, so Go sniffs the type: text/plain.
            lock_op = any(op in request.query for op in LOCK_OPERATIONS)
            return _json(
                body,
                index=None if lock_op else exc.variable.modify_index,
                status=409,
                query=False,
                content_type="text/plain",
            )
        except SimError as exc:
            return _text(exc.status, exc.message)

    # ------------------------------------------------------------ request parsing

    @staticmethod
    def _token(request: web.Request) -> str | None:
        token = request.headers.get("X-Nomad-Token", "").strip()
        if token:
            return token
        auth = request.headers.get("Authorization", "")
        parts = auth.split(" ", 1)
        if len(parts) == 2 and parts[0].lower() == "bearer":
            value = parts[1].strip().split(" ")[0]
            return value or None
        return None

    def _policy(self, request: web.Request) -> Policy:
        return self.state.authorize(self._token(request))

    def _policy_or_none(self, request: web.Request) -> Policy | None:
        try:
            return self._policy(request)
        except SimError:
            return None

    @staticmethod
    def _ns(request: web.Request, body_ns: Any = None) -> str:
        """The request's namespace; a variable's own Namespace wins (Variables.Apply)."""
        ns = (body_ns if isinstance(body_ns, str) else "") or request.query.get("namespace")
        return ns or "default"

    @staticmethod
    def _flag(request: web.Request, name: str, *, context: str = "") -> bool:
        """A bool query parameter as Go's strconv.ParseBool reads it (parseBool in http.go)."""
        value = request.query.get(name, "")
        if not value:
            return False
        if value in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if value in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise SimError(
            400,
            f'{context}Failed to parse value of "{name}" ({value}) as a bool: '
            f'strconv.ParseBool: parsing "{value}": invalid syntax',
        )

    @staticmethod
    async def _body(request: web.Request, *, required: bool = True) -> Any:
        raw = await request.read()
        if not raw.strip():
            if required:
                raise SimError(400, "EOF")
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SimError(400, f"invalid character in request body: {exc.msg}") from None

    def _wait_params(self, request: web.Request) -> tuple[int, float]:
        """``(index, seconds to hold)`` of a request, as Nomad's agent parses them.

        ``wait`` is a Go duration (command/agent/http.go parseWait); how long a
        query then blocks is QueryOptions.TimeToBlock (nomad/structs): not at
        all without an index, the default 5 minutes for a wait of 0 or less,
        and never more than 5 minutes.
        """
        wait = 0.0
        if "wait" in request.query:
            try:
                wait = parse_duration(request.query["wait"])
            except ValueError:
                raise SimError(400, "Invalid wait time") from None
        index = 0
        if "index" in request.query:
            try:
                index = int(request.query["index"])
                if index < 0:
                    raise ValueError
            except ValueError:
                raise SimError(400, "Invalid index") from None
        return index, time_to_block(index, wait)

    async def _blocking(
        self,
        request: web.Request,
        watch: Callable[[Change], bool],
        answer: Callable[[], tuple[Any, int]],
    ) -> web.Response:
        """Answer now, or once a watched change moves the index past ?index (or at the wait)."""
        min_index, wait = self._wait_params(request)
        body, index = answer()
        if min_index == 0 or index > min_index:
            return _json(body, index)
        loop = asyncio.get_running_loop()
        # Nomad adds up to wait/16 so that many watchers do not all wake together.
        deadline = loop.time() + wait + self._rng.uniform(0, wait / 16)
        while not self._closing.is_set():
            changed = asyncio.Event()

            def listener(change: Change, changed: asyncio.Event = changed) -> None:
                if watch(change):
                    changed.set()

            unsubscribe = self.state.subscribe(listener)
            try:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                waiters = [
                    asyncio.ensure_future(changed.wait()),
                    asyncio.ensure_future(self._closing.wait()),
                ]
                try:
                    await asyncio.wait(
                        waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for w in waiters:
                        w.cancel()
            finally:
                unsubscribe()
            if not changed.is_set():
                break
            body, index = answer()
            if index > min_index:
                return _json(body, index)
        body, index = answer()
        return _json(body, index)

    # ------------------------------------------------------------ variables

    async def list_vars(self, request: web.Request) -> web.Response:
        policy = self._policy(request)
        ns = self._ns(request)
        prefix = request.query.get("prefix", "")

        def watch(c: Change) -> bool:
            return c.table == "variables" and c.key.startswith(prefix) and ns in ("*", c.namespace)

        def answer() -> tuple[Any, int]:
            visible = [
                variable_json(v, items=False, lock=policy.management, at=self.wire_time)
                for v in self.state.list_vars(ns, prefix)
                if policy.can_var(v.path, "list")
            ]
            return visible, max(1, self.state.table_index["variables"])

        return await self._blocking(request, watch, answer)

    async def get_var(self, request: web.Request) -> web.Response:
        policy = self._policy(request)
        path = request.match_info["path"]
        ns = self._ns(request)
        if not policy.can_var(path, "read"):
            raise SimError(403, "Permission denied")

        def watch(c: Change) -> bool:
            return c.table == "variables" and c.key == path and c.namespace == ns

        def answer() -> tuple[Any, int]:
            var = self.state.variables.get((ns, path))
            if var is None:
                return None, max(1, self.state.table_index["variables"])
            return variable_json(var, lock=policy.management, at=self.wire_time), var.modify_index

        response = await self._blocking(request, watch, answer)
        if (ns, path) not in self.state.variables:
            index = int(response.headers["X-Nomad-Index"])
            return _text(404, "variable not found", index=index, query=True)
        return response

    @staticmethod
    def _lock_spec(body: dict[str, Any]) -> dict[str, Any] | None:
        lock = body.get("Lock")
        if lock is None:
            return None
        if not isinstance(lock, dict):
            raise SimError(
                400, "json: cannot unmarshal Lock into Go struct field of type VariableLock"
            )
        return lock

    @staticmethod
    def _lock_duration(lock: dict[str, Any], key: str, default: float) -> float:
        value = lock.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise SimError(400, f"invalid {key}")
        if isinstance(value, (int, float)):
            return value / 1e9 if value else default
        if isinstance(value, str):
            try:
                return parse_duration(value) or default
            except ValueError:
                raise SimError(400, f'time: invalid duration "{value}"') from None
        raise SimError(400, f"invalid {key}")

    async def put_var(self, request: web.Request) -> web.Response:
        # The agent's own checks (query, body decoding, Items present) answer
        # before the RPC authorizes; then canonicalizeAndValidate and the state.
        path = request.match_info["path"].strip("/")
        ops = [op for op in ("lock-acquire", "lock-renew", "lock-release") if op in request.query]
        if len(ops) > 1:
            raise SimError(400, "multiple lock operations")
        if ops and request.query.get("cas", ""):
            raise SimError(400, "CAS can't be used with lock operations")
        body = await self._body(request)
        if not isinstance(body, dict):
            raise SimError(
                400, "json: cannot unmarshal array into Go value of type VariableDecrypted"
            )
        ns = self._ns(request, body.get("Namespace"))
        items = body.get("Items")
        if items is not None and (
            not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values())
        ):
            raise SimError(
                400,
                "json: cannot unmarshal value into Go struct field VariableDecrypted.Items "
                "of type string",
            )
        lock = self._lock_spec(body)
        ttl = self._lock_duration(lock or {}, "TTL", DEFAULT_LOCK_TTL)
        lock_delay = self._lock_duration(lock or {}, "LockDelay", DEFAULT_LOCK_DELAY)
        op = ops[0] if ops else ""
        if not op and not items:
            raise SimError(400, "variable missing required Items object")
        policy = self._policy(request)
        if not policy.can_var(path, "write"):
            raise SimError(403, "Permission denied")
        if op == "lock-acquire":
            var = self.state.lock_acquire(ns, path, ttl=ttl, lock_delay=lock_delay, items=items)
            return _write(variable_json(var, lock=True, at=self.wire_time), var.modify_index)
        if op == "lock-renew":
            lock_id = (lock or {}).get("ID") or ""
            if not lock_id:
                raise SimError(400, "missing lock ID")
            var = self.state.lock_renew(ns, path, lock_id)
            body = variable_json(var, items=False, lock=True, at=self.wire_time)
            return _write(body, None)  # no setIndex
        if op == "lock-release":
            # nomad/variables_endpoint.go canonicalizeAndValidate: the lock ID first,
            # then any Items at all (an empty map too): a release never writes data.
            lock_id = (lock or {}).get("ID") or ""
            if not lock_id:
                raise SimError(400, "missing lock information")
            if items is not None:
                raise SimError(400, "lock release operation doesn't take variable items")
            var = self.state.lock_release(ns, path, lock_id)
            return _write(variable_json(var, items=False, at=self.wire_time), var.modify_index)
        if lock is not None and (lock.get("TTL") or lock.get("LockDelay")):
            raise SimError(400, "variable should not contain lock definition")
        cas_text = request.query.get("cas", "")
        cas: int | None = None
        if cas_text:
            try:
                cas = int(cas_text)
                if cas < 0:
                    raise ValueError
            except ValueError:
                raise SimError(400, f'can not parse cas: invalid syntax "{cas_text}"') from None
        lock_id = (lock or {}).get("ID") or None
        var = self.state.put_var(ns, path, items or {}, cas=cas, lock_id=lock_id)
        owner = lock_id is not None and var.lock is not None and var.lock.id == lock_id
        return _write(
            variable_json(var, lock=owner or policy.management, at=self.wire_time), var.modify_index
        )

    async def delete_var(self, request: web.Request) -> web.Response:
        policy = self._policy(request)
        path = request.match_info["path"].strip("/")
        ns = self._ns(request)
        if not policy.can_var(path, "destroy"):
            raise SimError(403, "Permission denied")
        cas_text = request.query.get("cas", "")
        cas: int | None = None
        if cas_text:
            try:
                cas = int(cas_text)
            except ValueError:
                raise SimError(400, f'can not parse cas: invalid syntax "{cas_text}"') from None
        index = self.state.delete_var(ns, path, cas=cas)
        return web.Response(status=204, headers={"X-Nomad-Index": str(index)})

    # ------------------------------------------------------------ nodes

    def _node_access(self, request: web.Request, *, write: bool) -> Policy:
        policy = self._policy(request)
        if not policy.can_node(write):
            raise SimError(403, "Permission denied")
        return policy

    async def list_nodes(self, request: web.Request) -> web.Response:
        self._node_access(request, write=False)
        fields = "Failed to parse node list fields: "
        resources = self._flag(request, "resources", context=fields)
        os_name = self._flag(request, "os", context=fields)
        prefix = request.query.get("prefix", "")

        def answer() -> tuple[Any, int]:
            stubs = [
                node_stub_json(n, resources=resources, os_name=os_name, at=self.wire_time)
                for n in self.state.list_nodes(prefix)
            ]
            return stubs, max(1, self.state.table_index["nodes"])

        return await self._blocking(request, lambda c: c.table == "nodes", answer)

    async def get_node(self, request: web.Request) -> web.Response:
        self._node_access(request, write=False)
        node_id = request.match_info["id"]

        def answer() -> tuple[Any, int]:
            node = self.state.nodes.get(node_id)
            if node is None:
                return None, max(1, self.state.table_index["nodes"])
            return node_json(node, at=self.wire_time), node.modify_index

        response = await self._blocking(
            request, lambda c: c.table == "nodes" and c.key == node_id, answer
        )
        if node_id not in self.state.nodes:
            index = int(response.headers["X-Nomad-Index"])
            return _text(404, "node not found", index=index, query=True)
        return response

    async def node_allocations(self, request: web.Request) -> web.Response:
        # Node.GetAllocs: node:read or 403; allocations of namespaces the token may
        # not read-job are left out, but still count towards the index.
        policy = self._node_access(request, write=False)
        node_id = request.match_info["id"]

        def answer() -> tuple[Any, int]:
            allocs = self.state.list_allocations("*", node_id=node_id)
            index = max((a.modify_index for a in allocs), default=0)
            readable = [alloc_json(a, at=self.wire_time) for a in allocs if policy.can_read_job()]
            return readable, index or max(1, self.state.table_index["allocs"])

        return await self._blocking(
            request, lambda c: c.table == "allocs" and c.node_id == node_id, answer
        )

    @staticmethod
    def _write_response(index: int, *, node_modify_index: int) -> web.Response:
        body = {
            "NodeModifyIndex": node_modify_index,
            "EvalIDs": None,
            "EvalCreateIndex": 0,
            "Index": index,
        }
        return _write(body, index)

    async def drain(self, request: web.Request) -> web.Response:
        # As everywhere: the agent decodes the body (400) before the RPC authorizes.
        node_id = request.match_info["id"]
        body = await self._body(request)
        if not isinstance(body, dict):
            raise SimError(400, "json: cannot unmarshal into NodeUpdateDrainRequest")
        spec = body.get("DrainSpec")
        meta = body.get("Meta") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise SimError(400, "json: cannot unmarshal Meta into map[string]string")
        deadline: float | None = None
        ignore = False
        if spec is not None:
            if not isinstance(spec, dict):
                raise SimError(
                    400, "json: cannot unmarshal DrainSpec into Go value of type DrainSpec"
                )
            raw = spec.get("Deadline", 0)
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise SimError(400, "json: cannot unmarshal DrainSpec.Deadline into time.Duration")
            deadline = raw / 1e9 if raw >= 0 else -1.0
            ignore = bool(spec.get("IgnoreSystemJobs", False))
        self._node_access(request, write=True)
        index = self.state.update_drain(
            node_id,
            deadline,
            ignore_system_jobs=ignore,
            mark_eligible=bool(body.get("MarkEligible", False)),
            meta=meta,
        )
        return self._write_response(index, node_modify_index=index)

    async def eligibility(self, request: web.Request) -> web.Response:
        node_id = request.match_info["id"]
        body = await self._body(request)
        self._node_access(request, write=True)
        wanted = body.get("Eligibility") if isinstance(body, dict) else None
        if wanted not in ("eligible", "ineligible"):
            raise SimError(500, f'invalid scheduling eligibility "{wanted or ""}"')
        index = self.state.set_eligibility(node_id, wanted == "eligible")
        # Node.UpdateEligibility sets only the reply's Index (0 when there was
        # nothing to do); its NodeModifyIndex stays 0, unlike UpdateDrain's.
        return self._write_response(index, node_modify_index=0)

    async def apply_node_meta(self, request: web.Request) -> web.Response:
        """POST /v1/client/metadata (a client agent endpoint servers forward by NodeID)."""
        self._node_access(request, write=True)
        body = await self._body(request)
        node_id = body.get("NodeID") if isinstance(body, dict) else None
        meta = body.get("Meta") if isinstance(body, dict) else None
        if not node_id:
            raise SimError(400, "missing NodeID")
        if not isinstance(meta, dict) or not all(
            v is None or isinstance(v, str) for v in meta.values()
        ):
            raise SimError(400, "json: cannot unmarshal Meta into map[string]*string")
        node = self.state.apply_node_meta(node_id, meta)
        return _write({"Meta": dict(node.meta), "Dynamic": meta, "Static": {}}, None)

    async def purge(self, request: web.Request) -> web.Response:
        self._node_access(request, write=True)
        index = self.state.purge_node(request.match_info["id"])
        body = {
            "HeartbeatTTL": 0,
            "EvalIDs": None,
            "EvalCreateIndex": 0,
            "NodeModifyIndex": index,
            "Features": 0,
            "LeaderRPCAddr": "",
            "NumNodes": 0,
            "Servers": None,
            "SchedulingEligibility": "",
            "SignedIdentity": None,
            # NodeUpdateResponse embeds QueryMeta, so its fields ride in the body.
            "Index": index,
            "LastContact": 0,
            "KnownLeader": False,
            "NextToken": "",
        }
        return _write(body, index)

    # ------------------------------------------------------------ allocations, evaluations

    async def list_allocations(self, request: web.Request) -> web.Response:
        policy = self._policy(request)
        # AllocsRequest hands a bad field selection back as a plain error: a 500.
        try:
            resources = self._flag(request, "resources")
            self._flag(request, "task_states")  # TaskStates are null here either way
        except SimError as exc:
            raise SimError(500, exc.message) from None
        if not policy.can_read_job():
            raise SimError(403, "Permission denied")
        ns = self._ns(request)
        prefix = request.query.get("prefix", "")

        def answer() -> tuple[Any, int]:
            allocs = [
                alloc_stub_json(a, resources=resources, at=self.wire_time)
                for a in self.state.list_allocations(ns)
                if a.id.startswith(prefix)
            ]
            return allocs, max(1, self.state.table_index["allocs"])

        return await self._blocking(request, lambda c: c.table == "allocs", answer)

    async def list_evaluations(self, request: web.Request) -> web.Response:
        policy = self._policy(request)
        if not policy.can_read_job():
            raise SimError(403, "Permission denied")
        ns = self._ns(request)
        status = request.query.get("status") or None
        job = request.query.get("job") or None

        def answer() -> tuple[Any, int]:
            evals = [
                eval_json(e, at=self.wire_time)
                for e in self.state.list_evaluations(ns, status, job)
            ]
            return evals, max(1, self.state.table_index["evals"])

        return await self._blocking(request, lambda c: c.table == "evals", answer)

    async def get_job(self, request: web.Request) -> web.Response:
        policy = self._policy(request)
        if not policy.can_read_job():
            raise SimError(403, "Permission denied")
        job = self.state.jobs.get((self._ns(request), request.match_info["id"]))
        if job is None:
            index = max(1, self.state.table_index["jobs"])
            return _text(404, "job not found", index=index, query=True)
        return _json(job_json(job), index=job.modify_index)

    async def leader(self, request: web.Request) -> web.Response:
        return _json(f"{self.host}:4647", query=False)

    # ------------------------------------------------------------ the simulator's own

    def _sim_control_allowed(self, request: web.Request) -> None:
        """Not Nomad's API: with ACLs on, only a management token may use it."""
        if not self._policy(request).management:
            raise SimError(403, "Permission denied")

    async def sim_hosts(self, request: web.Request) -> web.Response:
        """GET /v1/sim/hosts: the simulated Multipass hosts and how each is."""
        self._sim_control_allowed(request)
        return _json(self.host_listing() if self.host_listing else [], query=False)

    async def sim_host_action(self, request: web.Request) -> web.Response:
        """POST /v1/sim/hosts/<name>/<action>: break or mend a simulated host.

        What the owner's ``host_control`` raises as a SimError (an unknown host 404, an
        unknown action 400) is the answer; else the host's listing after the action.
        """
        self._sim_control_allowed(request)
        if self.host_control is None:
            raise SimError(404, "this Nomad simulator has no simulated hosts")
        name, action = request.match_info["name"], request.match_info["action"]
        await self.host_control(name, action)
        listing = self.host_listing() if self.host_listing else []
        return _json(next((h for h in listing if h.get("Name") == name), {}), query=False)

    async def peers(self, request: web.Request) -> web.Response:
        """GET /v1/status/peers: the servers' RPC addresses (one server here), as a client's
        `servers` takes them. Nomad answers without an ACL check (agent_endpoint.go, Status.Peers).
        """
        return _json([f"{self.host}:4647"], query=False)
