"""Builders of observed worlds for planner tests (unit and property)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

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


def spec_items(**items: object) -> dict[str, str]:
    """A pool variable's items (all strings, as Nomad's): a small pool unless told."""
    base: dict[str, str] = {"min": "3", "max": "5", "cloud_init_vars": "servers: [10.0.0.2]"}
    base.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in items.items()})
    return base


def spec(pool: str = "web", **items: object) -> PoolSpec:
    return parse_pool_spec(pool, spec_items(**items), index=10)


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


class FleetWorld:
    """A model fleet for planner tests: what really runs on each host, and what a pass sees.

    The truth (every VM on every host, every node) is kept apart from what the planner
    is shown: a host whose daemon is down, or that is powered off, lists nothing, and a
    powered-off host's nodes go down. Actions take effect at once (a launched VM joins
    as a ready node, a drain completes); each is checked against the fleet's rules as it
    lands: no launch or delete on a host that cannot be read, no name twice in the fleet.
    """

    def __init__(self, hosts: list[HostState], now: float = NOW, *, slow: bool = False) -> None:
        self.settings: dict[str, HostState] = {h.name: h for h in hosts}
        # slow: a launch is "being prepared" (unlisted, its name taken) until land().
        self.slow = slow
        self.preparing: dict[str, Instance] = {}
        self.daemon_down: set[str] = set()
        self.powered_off: set[str] = set()
        self.vms: dict[str, Instance] = {}  # by name, across the fleet
        self.nodes: dict[str, Node] = {}  # by id
        self.pools: dict[str, str] = {}  # instance name -> pool (its node's meta)
        self.now = now
        self._serial = 0

    def reachable(self, name: str) -> bool:
        return name not in self.daemon_down and name not in self.powered_off

    def host_states(self) -> dict[str, HostState]:
        out = {}
        for name, h in self.settings.items():
            up = self.reachable(name)
            out[name] = HostState(
                name=h.name,
                reachable=up,
                error=None if up else "connection refused",
                cpus=h.cpus,
                memory=h.memory,
                disk=h.disk,
                cordoned=h.cordoned,
                evacuate=h.evacuate,
                max_parallel_launches=h.max_parallel_launches,
            )
        return out

    def observe(self, *, before_hosts: bool = False) -> Observed:
        """What a pass reads; ``before_hosts``: no host mapping (the world before hosts)."""
        listed = tuple(i for i in self.vms.values() if self.reachable(i.host))
        hosts = {} if before_hosts else self.host_states()
        return Observed(listed, tuple(self.nodes.values()), (), at=self.now, hosts=hosts)

    def add(self, pool: str, name: str, host_name: str, *, ready: bool = True) -> None:
        """A VM already there (and its ready node, if ``ready``)."""
        self.vms[name] = Instance(name, InstanceState.RUNNING, created_at=self.now, host=host_name)
        self.pools[name] = pool
        if ready:
            self._join(name)

    def _join(self, name: str) -> None:
        self._serial += 1
        nid = f"n{self._serial}-{name}"
        self.nodes[nid] = Node(
            id=nid,
            name=name,
            status=NodeStatus.READY,
            meta={ownership.META_POOL: self.pools[name]},
            cpu_mhz=4000,
            memory_mb=4096,
            status_updated_at=self.now,
            create_index=self._serial,
        )

    def _nodes_of(self, name: str) -> list[str]:
        return [nid for nid, n in self.nodes.items() if n.name == name]

    def apply(self, s: PoolSpec, actions: tuple[object, ...] | list[object]) -> None:
        """The plan's actions land (``s``: the pool that planned them)."""
        from reconciler.plan.model import Action, ActionKind

        for a in actions:
            assert isinstance(a, Action)
            if a.kind in (ActionKind.LAUNCH, ActionKind.DELETE):
                assert self.reachable(a.host), f"{a.kind} sent to unreadable host {a.host}: {a}"
            if a.kind is ActionKind.LAUNCH:
                assert ownership.host_of_name(a.instance) == a.host, a
                there = self.vms.get(a.instance) or self.preparing.get(a.instance)
                if there is not None:
                    # The daemon answers "already exists" / "is being prepared": no twin.
                    assert there.host == a.host, f"{a.instance} launched on two hosts"
                    continue
                vm = Instance(a.instance, InstanceState.RUNNING, created_at=self.now, host=a.host)
                self.pools[a.instance] = s.pool
                if self.slow:
                    self.preparing[a.instance] = vm
                else:
                    self.vms[a.instance] = vm
                    self._join(a.instance)
            elif a.kind is ActionKind.DRAIN:
                assert a.node_id is not None
                n = self.nodes[a.node_id]
                self.nodes[a.node_id] = replace(
                    n,
                    eligible=False,
                    draining=False,
                    drain_meta=drain_meta(s, a.reason),
                    last_drain_status="complete",
                )
            elif a.kind is ActionKind.DELETE:
                vm = self.vms.get(a.instance)
                assert vm is None or vm.host == a.host, f"delete sent to the wrong host: {a}"
                self.vms.pop(a.instance, None)
                for nid in self._nodes_of(a.instance):
                    n = self.nodes[nid]
                    self.nodes[nid] = replace(n, status=NodeStatus.DOWN, status_updated_at=self.now)
            elif a.kind is ActionKind.PURGE_NODE:
                assert a.node_id is not None
                self.nodes.pop(a.node_id, None)

    def land(self) -> None:
        """Launches being prepared finish: their VMs are listed and their nodes join;
        nodes that were initializing again are ready."""
        for nid, n in list(self.nodes.items()):
            if n.status is NodeStatus.INITIALIZING and n.name in self.vms:
                self.nodes[nid] = replace(n, status=NodeStatus.READY, status_updated_at=self.now)
        for name, vm in sorted(self.preparing.items()):
            if vm.host in self.powered_off:
                continue  # finishes once the host is on again
            del self.preparing[name]
            self.vms[name] = replace(vm, created_at=self.now)
            self._join(name)

    def power_off(self, name: str) -> None:
        """The host and its VMs stop: its daemon is unreadable, its nodes go down."""
        self.powered_off.add(name)
        for vm in self.vms.values():
            if vm.host == name:
                for nid in self._nodes_of(vm.name):
                    n = self.nodes[nid]
                    if n.status is NodeStatus.READY:
                        self.nodes[nid] = replace(
                            n, status=NodeStatus.DOWN, status_updated_at=self.now
                        )

    def power_on(self, name: str, *, rejoin: NodeStatus = NodeStatus.READY) -> None:
        """The VMs come back as they were (RUNNING), their nodes rejoin: ``rejoin`` is
        the status they show first (Nomad: a node back from down is initializing until
        its client has registered again; ``land`` makes it ready)."""
        self.powered_off.discard(name)
        for vm in self.vms.values():
            if vm.host == name:
                for nid in self._nodes_of(vm.name):
                    n = self.nodes[nid]
                    if n.status is NodeStatus.DOWN:
                        self.nodes[nid] = replace(n, status=rejoin, status_updated_at=self.now)

    def on_host(self, pool: str) -> dict[str, list[str]]:
        """The pool's VMs by host (the truth, reachable or not)."""
        out: dict[str, list[str]] = {}
        for name, vm in sorted(self.vms.items()):
            if self.pools.get(name) == pool:
                out.setdefault(vm.host, []).append(name)
        return out
