"""Placement: which host each launch goes to, never past what a host has free.

Pure, as the rest of the planner. A host offers what its ``HostState`` says (the
daemon's figures, capped and less the reserves its variable sets); what is taken
is every member the reconciler placed there, each at its pool's spec (an outdated
member counts at its pool's current sizes: the older spec is not kept). Two
policies, one small function each, ties broken by host name:

* ``spread`` (the default): the allowed host with the fewest members of the pool;
* ``pack``: the allowed host with the most members of the pool that still has
  room, so one host fills before the next is used.

A host takes no new member while it cannot be read, is cordoned or is being
evacuated. Launches that fit nowhere are not planned: the plan says what is
missing where (it is not a failure to retry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

from reconciler import ownership
from reconciler.model import HostState
from reconciler.plan.model import ActionKind, Member, PoolWorld, Resources
from reconciler.spec import PoolSpec
from reconciler.units import format_size, plural


def footprint(spec: PoolSpec) -> Resources:
    """What one member of the pool takes on its host."""
    return Resources(spec.cpus, spec.memory_bytes, spec.disk_bytes)


def pool_usage(
    spec: PoolSpec, world: PoolWorld, inflight: Iterable[tuple[str, str]] = ()
) -> dict[str, Resources]:
    """What the pool's instances, and its launches under way, take on each host."""
    count: dict[str, int] = {}
    listed = set()
    for inst in world.instances:
        listed.add(inst.name)
        count[inst.host] = count.get(inst.host, 0) + 1
    for kind, name in inflight:
        parsed = ownership.parse_instance_name(name)
        if kind != ActionKind.LAUNCH.value or name in listed or parsed is None:
            continue
        if parsed[0] == spec.pool:
            host = ownership.host_of_name(name) or ownership.DEFAULT_HOST
            count[host] = count.get(host, 0) + 1
    each = footprint(spec)
    return {host: each * n for host, n in count.items()}


def free_capacity(
    hosts: Mapping[str, HostState], used: Mapping[str, Resources]
) -> dict[str, Resources]:
    """What each host has left for new members."""
    return {
        name: Resources(h.cpus, h.memory, h.disk) - used.get(name, Resources())
        for name, h in hosts.items()
    }


def allowed_hosts(spec: PoolSpec, hosts: Iterable[str]) -> list[str]:
    """The fleet's hosts the pool may use (its ``hosts`` names or globs), by name."""
    return sorted(h for h in hosts if _allowed(spec, h))


def _allowed(spec: PoolSpec, host: str) -> bool:
    return any(fnmatchcase(host, pattern) for pattern in spec.hosts)


def displacement(spec: PoolSpec, hosts: Mapping[str, HostState], member: Member) -> str | None:
    """Why a member must move to another host; None when it may stay where it is."""
    state = hosts.get(member.host)
    if state is None or member.frozen or member.instance is None:
        return None  # nothing known to move (or a world before hosts)
    if state.evacuate:
        return f"host {member.host} is being evacuated"
    if not _allowed(spec, member.host):
        return f"host {member.host} is not among the pool's hosts ({', '.join(spec.hosts)})"
    return None


def takes_new_members(state: HostState) -> str | None:
    """Why a host takes no new member now; None when it does."""
    if not state.reachable:
        return "unreachable"
    if state.cordoned:
        return "cordoned"
    if state.evacuate:
        return "being evacuated"
    return None


def _spread(fitting: Sequence[str], members: Mapping[str, int]) -> str:
    return min(fitting, key=lambda h: (members.get(h, 0), h))


def _pack(fitting: Sequence[str], members: Mapping[str, int]) -> str:
    return min(fitting, key=lambda h: (-members.get(h, 0), h))


POLICIES: dict[str, Callable[[Sequence[str], Mapping[str, int]], str]] = {
    "spread": _spread,
    "pack": _pack,
}


def scale_in_order(
    spec: PoolSpec,
    ordered: Sequence[Member],
    staying: Iterable[Member],
    limit: int | None = None,
) -> list[Member]:
    """Scale-in candidates (``ordered``: the scale_in strategy's order) in the order that
    keeps the pool as its ``placement`` wants, each removal taken from the host that
    ``spread`` has most members on (``pack``: fewest), the strategy's order within a
    host and between hosts that tie. ``staying``: the members that remain so far;
    ``limit``: only the first that many.

    Without it a host that comes back after its members were replaced elsewhere
    would lose its returned members first (the strategy's tie breaker is the name)
    and the pool would stay off it, never spread again. Kubernetes' ReplicaSet
    ranks pods on nodes with more of its replicas first the same way
    (controller_utils ActivePodsWithRanks).
    """
    count: dict[str, int] = {}
    for m in staying:
        count[m.host] = count.get(m.host, 0) + 1
    # Each host's candidates in the strategy's order, with their rank in it.
    queues: dict[str, list[tuple[int, Member]]] = {}
    for rank, m in enumerate(ordered):
        queues.setdefault(m.host, []).append((rank, m))
    heads = dict.fromkeys(queues, 0)
    sign = -1 if spec.placement == "spread" else 1
    want = len(ordered) if limit is None else min(limit, len(ordered))
    out: list[Member] = []
    while len(out) < want:
        host = min(heads, key=lambda h: (sign * count.get(h, 0), queues[h][heads[h]][0]))
        out.append(queues[host][heads[host]][1])
        count[host] = count.get(host, 0) - 1
        heads[host] += 1
        if heads[host] == len(queues[host]):
            del heads[host]
    return out


def place(
    spec: PoolSpec,
    count: int,
    hosts: Mapping[str, HostState],
    free: Mapping[str, Resources],
    members: Iterable[Member],
) -> tuple[list[str], str | None]:
    """The hosts of ``count`` new members, and why fewer could be placed, if they were.

    ``members``: the pool's members; those staying (not to be replaced, not lost)
    count toward the spread. With no hosts (a world before hosts) every launch goes
    to the single daemon, whose capacity is not accounted.
    """
    if not hosts:
        return [ownership.DEFAULT_HOST] * count, None
    allowed = allowed_hosts(spec, hosts)
    open_hosts = [h for h in allowed if takes_new_members(hosts[h]) is None]
    staying: dict[str, int] = {}
    for m in members:
        if not (m.to_replace or m.lost):
            staying[m.host] = staying.get(m.host, 0) + 1
    room = {h: free.get(h, Resources()) for h in open_hosts}
    need = footprint(spec)
    choose = POLICIES[spec.placement]
    chosen: list[str] = []
    for _ in range(count):
        fitting = [h for h in open_hosts if room[h].holds(need)]
        if not fitting:
            break
        host = choose(fitting, staying)
        chosen.append(host)
        room[host] -= need
        staying[host] = staying.get(host, 0) + 1
    if len(chosen) == count:
        return chosen, None
    return chosen, _shortfall(spec, count - len(chosen), hosts, allowed, room, need)


def _shortfall(
    spec: PoolSpec,
    missing: int,
    hosts: Mapping[str, HostState],
    allowed: Sequence[str],
    room: Mapping[str, Resources],
    need: Resources,
) -> str:
    """What keeps ``missing`` launches off every allowed host, host by host."""
    head = (
        f"{plural(missing, 'launch', 'launches')} cannot be placed "
        f"({need.cpus} CPUs, {format_size(need.memory)} memory, {format_size(need.disk)} disk each)"
    )
    if not allowed:
        return f"{head}: no host matches the pool's hosts ({', '.join(spec.hosts)})"
    why = []
    for h in allowed:
        closed = takes_new_members(hosts[h])
        if closed is not None:
            why.append(f"{h}: {closed}")
            continue
        free = room[h]
        short = [
            f"{shown} {what} free"
            for what, have, want, shown in (
                ("CPUs", free.cpus, need.cpus, str(max(0, free.cpus))),
                ("memory", free.memory, need.memory, format_size(max(0, free.memory))),
                ("disk", free.disk, need.disk, format_size(max(0, free.disk))),
            )
            if have < want
        ]
        why.append(f"{h}: {', '.join(short)}")
    return f"{head}: {'; '.join(why)}"
