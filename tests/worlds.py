"""Builders of observed worlds for planner tests (unit and property)."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler import ownership
from reconciler.model import (
    Allocation,
    HostState,
    Instance,
    InstanceState,
    Node,
    NodeStatus,
    Observed,
)
from reconciler.plan import drain_meta
from reconciler.spec import PoolSpec, parse_pool_spec

NOW = 1_700_000_000.0


def spec(pool: str = "web", **items: object) -> PoolSpec:
    base: dict[str, str] = {"min": "3", "max": "5", "cloud_init_vars": "servers: [10.0.0.2]"}
    base.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in items.items()})
    return parse_pool_spec(pool, base, index=10)


GiB = 1 << 30


def instance(
    name: str,
    *,
    age: float = 3600.0,
    state: InstanceState = InstanceState.RUNNING,
    host: str | None = None,
) -> Instance:
    """An instance as its daemon lists it; ``host``: that daemon (default: the name's)."""
    where = host or ownership.host_of_name(name) or ownership.DEFAULT_HOST
    return Instance(name=name, state=state, created_at=NOW - age, host=where)


def host(
    name: str,
    *,
    cpus: int = 64,
    memory: int = 64 * GiB,
    disk: int = 1000 * GiB,
    reachable: bool = True,
    cordoned: bool = False,
    evacuate: bool = False,
) -> HostState:
    """A host as a pass found it; roomy unless told (usable capacity, reserves applied)."""
    return HostState(
        name=name,
        reachable=reachable,
        error=None if reachable else "connection refused",
        cpus=cpus,
        memory=memory,
        disk=disk,
        cordoned=cordoned,
        evacuate=evacuate,
    )


def node(
    name: str,
    pool: str = "web",
    *,
    status: NodeStatus = NodeStatus.READY,
    eligible: bool = True,
    draining: bool = False,
    drain_by: PoolSpec | None = None,
    foreign_drain: bool = False,
    last_drain_status: str | None = None,
    deadline_at: float | None = None,
    meta: Mapping[str, str] | None = None,
    status_age: float = 3600.0,
    create_index: int = 1,
) -> Node:
    parsed = ownership.parse_instance_name(name)
    node_meta = {ownership.META_POOL: pool}
    if parsed:
        node_meta[ownership.META_TEMPLATE_HASH] = parsed[1]
    node_meta.update(meta or {})
    dmeta: dict[str, str] = {}
    if drain_by is not None:
        dmeta = drain_meta(drain_by, "test")
    elif foreign_drain:
        dmeta = {"reason": "kernel upgrade"}
    return Node(
        id=f"id-{name}-{create_index}",
        name=name,
        status=status,
        eligible=eligible,
        draining=draining,
        drain_meta=dmeta,
        drain_deadline_at=deadline_at,
        last_drain_status=last_drain_status,
        meta=node_meta,
        node_class=pool,
        datacenter="dc1",
        cpu_mhz=4000,
        memory_mb=2048,
        status_updated_at=NOW - status_age,
        create_index=create_index,
    )


def alloc(
    node_id: str, n: int = 0, *, job_type: str = "service", cpu: int = 500, mem: int = 256
) -> Allocation:
    return Allocation(
        id=f"a-{node_id}-{n}",
        node_id=node_id,
        job_id=f"job{n}",
        job_type=job_type,
        cpu_mhz=cpu,
        memory_mb=mem,
    )


def world(
    instances: list[Instance] = (),  # type: ignore[assignment]
    nodes: list[Node] = (),  # type: ignore[assignment]
    allocations: list[Allocation] = (),  # type: ignore[assignment]
    hosts: list[HostState] | None = None,
) -> Observed:
    """A world; ``hosts``: the fleet (None: the world before hosts). Instances on a host
    that cannot be read are left out, as its daemon's list is."""
    fleet = {h.name: h for h in hosts or ()}
    listed = tuple(i for i in instances if i.host not in fleet or fleet[i.host].reachable)
    return Observed(listed, tuple(nodes), tuple(allocations), at=NOW, hosts=fleet)


def ready_member(
    s: PoolSpec, ordinal: int, *, thash: str | None = None, host: str = ownership.DEFAULT_HOST
) -> tuple[Instance, Node]:
    name = ownership.instance_name(s.pool, thash or s.template_hash, ordinal, host)
    return instance(name), node(name, s.pool)
