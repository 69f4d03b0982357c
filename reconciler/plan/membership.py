"""Membership: which instances and nodes are the pool's, paired into members.

Nothing that is not provably ours becomes a member, so nothing else is touched:
a name of our shape (``<pool>-<hash>[-<host>]-<ordinal>``) and, once a node is read
in full, client meta that does not name another pool.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from reconciler import ownership
from reconciler.model import Allocation, HostState, Instance, Node, Observed
from reconciler.plan import health
from reconciler.plan.health import is_our_drain as is_our_drain
from reconciler.plan.model import NO_USAGE, ActionKind, Member, NodeUsage, Phase, PoolWorld
from reconciler.spec import PoolSpec


def group_by_pool(observed: Observed) -> dict[str, PoolWorld]:
    """Each pool's instances, nodes and live allocations, in one walk of the world.

    A pass plans every pool against the same world: grouped once, each plan
    costs its own pool's size, and a pass costs the world plus the pools rather
    than the world once per pool.
    """
    instances: dict[str, list[Instance]] = {}
    for inst in observed.instances:
        pool = _pool_of(inst.name)
        if pool is not None:
            instances.setdefault(pool, []).append(inst)
    nodes: dict[str, list[Node]] = {}
    node_pools: dict[str, str] = {}
    for node in observed.nodes:
        pool = _pool_of(node.name)
        # A full read's meta naming another pool vetoes the name (see is_our_node).
        if pool is not None and node.meta.get(ownership.META_POOL, pool) == pool:
            nodes.setdefault(pool, []).append(node)
            node_pools[node.id] = pool
    allocations: dict[str, list[Allocation]] = {}
    for alloc in observed.allocations:
        pool = node_pools.get(alloc.node_id)
        if pool is not None and alloc.is_live:
            allocations.setdefault(pool, []).append(alloc)
    return {
        pool: PoolWorld(
            tuple(instances.get(pool, ())),
            tuple(nodes.get(pool, ())),
            tuple(allocations.get(pool, ())),
        )
        for pool in instances.keys() | nodes.keys()
    }


def _pool_of(name: str) -> str | None:
    parsed = ownership.parse_name(name)  # memoized: the same names come back
    return parsed.pool if parsed is not None else None


def is_our_node(spec: PoolSpec, node: Node) -> bool:
    """Ours: named as one of our instances, and no client meta saying otherwise.

    Node list stubs carry no meta (Nomad's list endpoint leaves it out), so the
    name is the mark: ``<pool>-<5-char hash>[-<host>]-<ordinal>``, the hash from an
    alphabet people do not type. When the meta is known (a full node read), a
    pool meta naming another pool vetoes.
    """
    parsed = ownership.parse_instance_name(node.name)
    if parsed is None or parsed[0] != spec.pool:
        return False
    pool_meta = node.meta.get(ownership.META_POOL)
    return pool_meta is None or pool_meta == spec.pool


def join(
    spec: PoolSpec,
    observed: Observed,
    now: float,
    inflight: frozenset[tuple[str, str]] = frozenset(),
    world: PoolWorld | None = None,
) -> tuple[list[Member], list[Node]]:
    """Members of this pool, sorted by name, and stale duplicate nodes to purge.

    ``world``: the pool's part of ``observed`` (``group_by_pool``), if grouped already.
    """
    if world is None:
        world = group_by_pool(observed).get(spec.pool, PoolWorld())
    instances = {inst.name: inst for inst in world.instances}
    nodes, stale = newest_nodes(world.nodes)
    usage: defaultdict[str, NodeUsage] = defaultdict(NodeUsage)
    for alloc in world.allocations:
        usage[alloc.node_id].add(alloc)
    deleting = {name for kind, name in inflight if kind == ActionKind.DELETE.value}
    members = []
    for name in sorted(instances.keys() | nodes.keys()):
        parsed = ownership.parse_name(name)
        assert parsed is not None  # grouped by this very parse
        node = nodes.get(name)
        inst = instances.get(name)
        live = usage.get(node.id, NO_USAGE) if node is not None else NO_USAGE
        host = inst.host if inst is not None else parsed.host
        known = inst is not None or inventory_known(observed.hosts, host)
        members.append(
            _member(spec, name, parsed, inst, node, live, now, name in deleting, host, known)
        )
    # Launches in flight are members too: a relaunch must not pick their names
    # and the count must include them, or a slow launch would be doubled.
    known_names = {m.name for m in members}
    for kind, name in sorted(inflight):
        if kind != ActionKind.LAUNCH.value or name in known_names:
            continue
        launching = ownership.parse_name(name)
        if launching is None or launching.pool != spec.pool:
            continue
        members.append(
            Member(
                name=name,
                template_hash=launching.template_hash,
                ordinal=launching.ordinal,
                phase=Phase.PENDING,
                instance=None,
                node=None,
                outdated=launching.template_hash != spec.template_hash,
                protected=False,
                host=launching.host,
            )
        )
    return members, stale


def inventory_known(hosts: Mapping[str, HostState], host: str) -> bool:
    """Whether an instance missing from the lists is known to be gone.

    Its host was read (or, for a host no variable names any more, every host was):
    instances do not move between hosts, so one that is not listed there is gone.
    An empty mapping is the single daemon of a world before hosts, read in full.
    """
    state = hosts.get(host)
    if state is not None:
        return state.reachable
    return all(h.reachable for h in hosts.values())


def newest_nodes(nodes: Iterable[Node]) -> tuple[dict[str, Node], list[Node]]:
    """The newest node of each name, and the older ones of a name seen twice.

    Nomad can hold several nodes of one name (a VM re-registered after a purge,
    say): the newest is the member's node, older down ones are stale.
    """
    newest: dict[str, Node] = {}
    stale: list[Node] = []
    for node in nodes:
        other = newest.get(node.name)
        if other is None:
            newest[node.name] = node
            continue
        newer, older = (node, other) if node.create_index > other.create_index else (other, node)
        newest[node.name] = newer
        stale.append(older)
    return newest, stale


def _member(
    spec: PoolSpec,
    name: str,
    parsed: ownership.InstanceName,
    inst: Instance | None,
    node: Node | None,
    live: NodeUsage,
    now: float,
    deleting: bool,
    host: str,
    inventory_known: bool,
) -> Member:
    blocking = bool(live.non_system if spec.drain_ignore_system_jobs else live.count)
    if inventory_known:
        phase, unhealthy = health.phase(spec, inst, node, blocking, now, deleting)
        frozen = lost = False
    else:
        # The daemon was not read: judge by the node alone (a daemon restart does not
        # stop its VMs); a node down past unhealthy_timeout is a member lost with its host.
        assert node is not None  # an unlisted instance is a member only through its node
        phase, unhealthy = health.node_phase(spec, None, node, blocking, now)
        frozen, lost = True, phase is Phase.DOWN and unhealthy is not None
    return Member(
        name=name,
        template_hash=parsed.template_hash,
        ordinal=parsed.ordinal,
        phase=phase,
        instance=inst,
        node=node,
        outdated=parsed.template_hash != spec.template_hash,
        protected=node is not None and node.meta.get(ownership.META_PROTECT) == "true",
        usage=live,
        unhealthy=unhealthy,
        host=host,
        frozen=frozen,
        lost=lost,
    )
