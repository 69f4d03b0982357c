"""A Nomad HTTP API simulator: a real aiohttp server on loopback.

Same paths, JSON shapes (PascalCase), status codes and X-Nomad-Index headers
as Nomad for the endpoints the reconciler uses; blocking queries hold the
request until the table's index passes the one asked for or the wait elapses.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from reconciler.sim.faults import FaultInjector
from reconciler.sim.nomad_state import NomadState, SimAlloc, SimError, SimEval, SimNode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
MAX_WAIT = 600.0  # Nomad caps a blocking query's wait at 10 minutes


def _rfc3339(ts: float | None) -> str:
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def node_stub_json(n: SimNode) -> dict[str, Any]:
    last = None
    if n.last_drain is not None:
        last = n.last_drain | {
            "StartedAt": _rfc3339(n.last_drain["StartedAt"]),
            "UpdatedAt": _rfc3339(n.last_drain["UpdatedAt"]),
        }
    return {
        "ID": n.id,
        "Name": n.name,
        "Address": "10.73.0.1",
        "Datacenter": n.datacenter,
        "NodeClass": n.node_class,
        "NodePool": n.node_pool,
        "Version": "1.9.3",
        "Drain": n.drain is not None,
        "SchedulingEligibility": n.eligibility,
        "Status": n.status,
        "StatusDescription": "",
        "LastDrain": last,
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    }


def node_resources_json(n: SimNode) -> dict[str, Any]:
    return {
        "NodeResources": {"Cpu": {"CpuShares": n.cpu_mhz}, "Memory": {"MemoryMB": n.memory_mb}},
        "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}},
    }


def node_json(n: SimNode) -> dict[str, Any]:
    """A full node: the stub's fields plus Meta, DrainStrategy and StatusUpdatedAt."""
    strategy = None
    if n.drain is not None:
        strategy = {
            "DrainSpec": {
                "Deadline": int(n.drain.deadline * 1e9),
                "IgnoreSystemJobs": n.drain.ignore_system_jobs,
            },
            "ForceDeadline": _rfc3339(n.drain.force_at),
            "StartedAt": _rfc3339(n.drain.started_at),
        }
    return (
        node_stub_json(n)
        | node_resources_json(n)
        | {
            "Meta": dict(n.meta),
            "DrainStrategy": strategy,
            "StatusUpdatedAt": int(n.status_updated_at),
        }
    )


def alloc_json(a: SimAlloc, node_name: str) -> dict[str, Any]:
    return {
        "ID": a.id,
        "Namespace": "default",
        "NodeID": a.node_id,
        "NodeName": node_name,
        "JobID": a.job_id,
        "JobType": a.job_type,
        "TaskGroup": a.task_group,
        "DesiredStatus": a.desired_status,
        "ClientStatus": a.client_status,
        "AllocatedResources": {
            "Tasks": {
                "task": {"Cpu": {"CpuShares": a.cpu_mhz}, "Memory": {"MemoryMB": a.memory_mb}}
            }
        },
        "CreateIndex": a.create_index,
        "ModifyIndex": a.modify_index,
    }


def eval_json(e: SimEval) -> dict[str, Any]:
    return {
        "ID": e.id,
        "JobID": e.job_id,
        "Namespace": "default",
        "Status": e.status,
        "Type": "service",
        "TriggeredBy": "job-register",
        "NodePool": e.node_pool,
        "QueuedAllocations": {"group": e.queued},
        "CreateIndex": e.create_index,
        "ModifyIndex": e.modify_index,
    }


def parse_wait(text: str | None) -> float:
    if not text:
        return 300.0
    m = _DURATION.match(text)
    if not m:
        raise SimError(400, f"invalid wait time {text!r}")
    return min(MAX_WAIT, int(m.group(1)) * _UNITS[m.group(2)])


class NomadSimServer:
    def __init__(
        self,
        state: NomadState,
        *,
        faults: FaultInjector | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.state = state
        self.faults = faults or FaultInjector()
        self.host = host
        self.port = port
        self.requests: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        state.listeners.append(self._on_change)

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _on_change(self) -> None:
        # Wake every blocking query; each re-checks its own table's index.
        self._changed.set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/v1/vars", self.list_vars)
        r.add_get("/v1/var/{path:.+}", self.get_var)
        r.add_put("/v1/var/{path:.+}", self.put_var)
        r.add_delete("/v1/var/{path:.+}", self.delete_var)
        r.add_get("/v1/nodes", self.list_nodes)
        r.add_post("/v1/node/{id}/drain", self.drain)
        r.add_post("/v1/node/{id}/eligibility", self.eligibility)
        r.add_route("*", "/v1/node/{id}/purge", self.purge)
        r.add_get("/v1/node/{id}/allocations", self.node_allocations)
        r.add_get("/v1/node/{id}", self.get_node)
        r.add_get("/v1/allocations", self.list_allocations)
        r.add_get("/v1/evaluations", self.list_evaluations)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        pattern = route.canonical if route is not None else request.path
        key = f"{request.method} {pattern}"
        self.requests[key] = self.requests.get(key, 0) + 1
        fault = self.faults.lookup(f"{request.method} {request.path}") or self.faults.lookup(key)
        if fault is not None:
            if fault.hang:
                await asyncio.Event().wait()
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if self.faults.should_fail(fault):
                return web.Response(status=500, text="simulated fault")
        try:
            return await handler(request)
        except SimError as exc:
            if exc.body is not None:
                return web.json_response(exc.body, status=exc.status)
            return web.Response(status=exc.status, text=exc.message)

    # ------------------------------------------------------------ helpers

    def _token(self, request: web.Request) -> str | None:
        token = request.headers.get("X-Nomad-Token")
        auth = request.headers.get("Authorization", "")
        if not token and auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ")
        return token

    def _ns(self, request: web.Request) -> str:
        return request.query.get("namespace") or "default"

    def _reply(self, body: Any, table: str) -> web.Response:
        return web.json_response(
            body, headers={"X-Nomad-Index": str(self.state.table_index[table])}, dumps=json.dumps
        )

    async def _block(self, request: web.Request, table: str) -> None:
        """Hold a blocking query until the table's index passes `index` or `wait` elapses."""
        if "index" not in request.query:
            return
        try:
            index = int(request.query["index"])
        except ValueError:
            raise SimError(400, "index must be a number") from None
        deadline = asyncio.get_running_loop().time() + parse_wait(request.query.get("wait"))
        while self.state.table_index[table] <= index:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SimError(400, "failed to parse request body as JSON") from None

    # ------------------------------------------------------------ variables

    async def list_vars(self, request: web.Request) -> web.Response:
        policy = self.state.authorize(self._token(request))
        prefix = request.query.get("prefix", "")
        await self._block(request, "vars")
        found = [
            v.meta_json()
            for v in self.state.list_vars(self._ns(request), prefix)
            if policy.can_var(v.path, "list")
        ]
        return self._reply(found, "vars")

    async def get_var(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if not self.state.authorize(self._token(request)).can_var(path, "read"):
            raise SimError(403, "Permission denied")
        return self._reply(self.state.get_var(self._ns(request), path).to_json(), "vars")

    async def put_var(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if not self.state.authorize(self._token(request)).can_var(path, "write"):
            raise SimError(403, "Permission denied")
        body = await self._json(request)
        if not isinstance(body, dict):
            raise SimError(400, "request body must be a variable object")
        ns = self._ns(request)
        q = request.query
        lock = body.get("Lock") or {}
        if "lock-acquire" in q:
            var = self.state.lock_acquire(
                ns,
                path,
                parse_wait(lock.get("TTL") or "15s"),
                parse_wait(lock.get("LockDelay") or "15s"),
            )
        elif "lock-renew" in q:
            var = self.state.lock_renew(ns, path, str(lock.get("ID", "")))
        elif "lock-release" in q:
            var = self.state.lock_release(ns, path, str(lock.get("ID", "")))
        else:
            items = body.get("Items")
            if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
                raise SimError(400, "variable items must be a map of strings")
            cas = int(q["cas"]) if "cas" in q else None
            var = self.state.put_var(ns, path, items, cas)
        return self._reply(var.to_json(), "vars")

    async def delete_var(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if not self.state.authorize(self._token(request)).can_var(path, "destroy"):
            raise SimError(403, "Permission denied")
        cas = int(request.query["cas"]) if "cas" in request.query else None
        self.state.delete_var(self._ns(request), path, cas)
        return web.Response(
            status=204, headers={"X-Nomad-Index": str(self.state.table_index["vars"])}
        )

    # ------------------------------------------------------------ nodes

    def _node_access(self, request: web.Request, write: bool) -> None:
        if not self.state.authorize(self._token(request)).can_node(write):
            raise SimError(403, "Permission denied")

    async def list_nodes(self, request: web.Request) -> web.Response:
        self._node_access(request, write=False)
        await self._block(request, "nodes")
        with_resources = request.query.get("resources") == "true"
        nodes = sorted(self.state.nodes.values(), key=lambda n: n.id)
        body = [
            node_stub_json(n) | (node_resources_json(n) if with_resources else {}) for n in nodes
        ]
        return self._reply(body, "nodes")

    async def get_node(self, request: web.Request) -> web.Response:
        self._node_access(request, write=False)
        return self._reply(node_json(self.state.get_node(request.match_info["id"])), "nodes")

    async def drain(self, request: web.Request) -> web.Response:
        self._node_access(request, write=True)
        body = await self._json(request)
        if not isinstance(body, dict):
            raise SimError(400, "request body must be a drain request object")
        self.state.drain(
            request.match_info["id"],
            body.get("DrainSpec"),
            bool(body.get("MarkEligible")),
            body.get("Meta"),
        )
        return self._reply(
            {"EvalIDs": [], "EvalCreateIndex": 0, "NodeModifyIndex": self.state.index}, "nodes"
        )

    async def eligibility(self, request: web.Request) -> web.Response:
        self._node_access(request, write=True)
        body = await self._json(request)
        value = body.get("Eligibility") if isinstance(body, dict) else None
        if value not in ("eligible", "ineligible"):
            raise SimError(400, 'Eligibility must be "eligible" or "ineligible"')
        self.state.set_eligibility(request.match_info["id"], value == "eligible")
        return self._reply({"EvalIDs": [], "NodeModifyIndex": self.state.index}, "nodes")

    async def purge(self, request: web.Request) -> web.Response:
        if request.method not in ("PUT", "POST"):
            raise web.HTTPMethodNotAllowed(request.method, ["PUT", "POST"])
        self._node_access(request, write=True)
        self.state.purge_node(request.match_info["id"])
        return self._reply({"EvalIDs": [], "NodeModifyIndex": self.state.index}, "nodes")

    async def node_allocations(self, request: web.Request) -> web.Response:
        self._node_access(request, write=False)
        node = self.state.get_node(request.match_info["id"])
        allocs = [
            alloc_json(a, node.name) for a in self.state.allocs.values() if a.node_id == node.id
        ]
        return self._reply(allocs, "allocs")

    async def list_allocations(self, request: web.Request) -> web.Response:
        self._node_access(request, write=False)
        await self._block(request, "allocs")
        names = {n.id: n.name for n in self.state.nodes.values()}
        allocs = sorted(self.state.allocs.values(), key=lambda a: a.id)
        return self._reply([alloc_json(a, names.get(a.node_id, "")) for a in allocs], "allocs")

    async def list_evaluations(self, request: web.Request) -> web.Response:
        self._node_access(request, write=False)
        status = request.query.get("status")
        evals = [eval_json(e) for e in self.state.evals.values() if status in (None, e.status)]
        return self._reply(evals, "evals")
