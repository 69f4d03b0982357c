"""What `reconciler hosts` shows: each Multipass host, its capacity and the members on it.

Pure: built from one pass of reading (the plans and ``Observed.hosts``), so the
command, the metrics (reconciler.telemetry) and the tests all see the same figures.

What a host holds is counted as the planner counts it (reconciler.plan.placement):
every member whose instance its daemon listed, each at its pool's *current* spec
sizes (an outdated member of an older spec counts as the current one would). A
member whose instance is not listed (its VM gone, or its daemon not read) takes
nothing. VMs that are not the reconciler's are not seen at all: the host
variable's reserves exist to cover them (docs/hosts.md, "Capacity").

The JSON form (``hosts_to_json``) is a contract for scripts, schema
``multipass-reconciler/hosts/v1``: fields are only added while it stays v1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler import ownership
from reconciler.logs import scrub
from reconciler.model import HostState
from reconciler.plan import Phase, Plan, Resources
from reconciler.plan.placement import footprint
from reconciler.spec import PoolSpec
from reconciler.units import plural

HOSTS_SCHEMA = "multipass-reconciler/hosts/v1"

_PHASE_ORDER = tuple(Phase)


class PoolPlanLike(Protocol):
    """What the view reads of a pool's planning (reconciler.controller.PoolPlan)."""

    @property
    def pool(self) -> str: ...

    @property
    def spec(self) -> PoolSpec | None: ...

    @property
    def plan(self) -> Plan | None: ...


def resources_json(r: Resources) -> dict[str, int]:
    return {"cpus": r.cpus, "memory": r.memory, "disk": r.disk}


@dataclass(frozen=True, slots=True)
class PoolOnHost:
    """One pool's members on one host, by phase (only phases that occur)."""

    pool: str
    members: int
    phases: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class HostRow:
    """One host as `reconciler hosts` shows it.

    ``capacity``: what the reconciler may place there in all (HostState: caps and
    reserves applied, CPUs times the overcommit factor); None when it is not
    accounted (a reading that named no host: the one daemon of today, unmeasured) or not known
    (the daemon could not be read). ``free`` is ``capacity - used`` and may be
    negative (a cap lowered below what runs there). ``registered`` false: members
    were found with this host in their names but no host variable names it.
    """

    name: str
    reachable: bool
    error: str | None
    version: str
    capacity: Resources | None
    used: Resources
    cordoned: bool = False
    evacuate: bool = False
    max_parallel_launches: int | None = None
    registered: bool = True
    pools: tuple[PoolOnHost, ...] = ()

    @property
    def free(self) -> Resources | None:
        return None if self.capacity is None else self.capacity - self.used

    @property
    def members(self) -> int:
        return sum(p.members for p in self.pools)


@dataclass(frozen=True, slots=True)
class HostsView:
    hosts: tuple[HostRow, ...]
    # Pools whose members are not shown nor counted, and why (an invalid spec: no plan).
    unaccounted: Mapping[str, str] = field(default_factory=dict)


def build_hosts(pools: Iterable[PoolPlanLike], hosts: Mapping[str, HostState]) -> HostsView:
    """Every host of the fleet (an empty ``hosts``: the one implicit host ``default``)."""
    used: dict[str, Resources] = {}
    phases: dict[str, dict[str, dict[Phase, int]]] = {}  # host -> pool -> phase -> n
    unaccounted: dict[str, str] = {}
    for pp in pools:
        if pp.plan is None or pp.spec is None:
            unaccounted[pp.pool] = "no plan (invalid spec or planning failed)"
            continue
        size = footprint(pp.spec)
        for m in pp.plan.members:
            host = m.host
            by_phase = phases.setdefault(host, {}).setdefault(pp.pool, {})
            by_phase[m.phase] = by_phase.get(m.phase, 0) + 1
            if m.instance is not None:  # listed by its daemon: it takes room there
                used[host] = used.get(host, Resources()) + size
    states: dict[str, HostState | None] = {**hosts} or {ownership.DEFAULT_HOST: None}
    rows = []
    for name in sorted(states.keys() | phases.keys()):
        on_host = tuple(
            PoolOnHost(
                pool,
                sum(counts.values()),
                {p.value: counts[p] for p in _PHASE_ORDER if counts.get(p)},
            )
            for pool, counts in sorted(phases.get(name, {}).items())
        )
        rows.append(
            _row(name, states.get(name), name in states, used.get(name, Resources()), on_host)
        )
    return HostsView(tuple(rows), unaccounted)


def _row(
    name: str,
    state: HostState | None,
    registered: bool,
    used: Resources,
    pools: tuple[PoolOnHost, ...],
) -> HostRow:
    if state is None and registered:
        # No host variable at all: today's single daemon, read (or the pass would have
        # failed) and not accounted.
        return HostRow(name, True, None, "", None, used, pools=pools)
    if state is None:
        return HostRow(
            name,
            False,
            "no host variable names this host; its members are not managed as placed",
            "",
            None,
            used,
            registered=False,
            pools=pools,
        )
    capacity = Resources(state.cpus, state.memory, state.disk) if state.reachable else None
    return HostRow(
        name,
        state.reachable,
        state.error,
        state.version,
        capacity,
        used,
        cordoned=state.cordoned,
        evacuate=state.evacuate,
        max_parallel_launches=state.max_parallel_launches,
        pools=pools,
    )


# ------------------------------------------------------------------ shown


def hosts_to_json(view: HostsView) -> dict[str, Any]:
    """The `hosts -o json` document (docs/hosts.md, "Watching the hosts")."""
    return {
        "schema": HOSTS_SCHEMA,
        "hosts": [
            {
                "name": r.name,
                "registered": r.registered,
                "reachable": r.reachable,
                "error": None if r.error is None else scrub(r.error),
                "version": r.version or None,
                "cordoned": r.cordoned,
                "evacuate": r.evacuate,
                "max_parallel_launches": r.max_parallel_launches,
                "capacity": None if r.capacity is None else resources_json(r.capacity),
                "used": resources_json(r.used),
                "free": None if r.free is None else resources_json(r.free),
                "members": r.members,
                "pools": {
                    p.pool: {"members": p.members, "phases": dict(p.phases)} for p in r.pools
                },
            }
            for r in view.hosts
        ],
        "unaccounted": dict(view.unaccounted),
    }


_GIB, _MIB = 1 << 30, 1 << 20


def human_size(size: int) -> str:
    """2147483648 -> "2G", 1.5 GiB -> "1.5G", 512 MiB -> "512M" (for people, not for the daemon)."""
    sign, size = ("-", -size) if size < 0 else ("", size)
    if size >= _GIB:
        text = f"{size / _GIB:.1f}".removesuffix(".0") + "G"
    elif size >= _MIB:
        text = f"{size / _MIB:.0f}M"
    else:
        text = f"{size}B" if size else "0"
    return sign + text


def _figure(kind: str, used: int, capacity: int | None) -> str:
    show = str if kind == "cpus" else human_size
    if capacity is None:
        return f"{show(used)} used"
    free = capacity - used
    over = " (over capacity)" if free < 0 else ""
    return f"{show(used)} used of {show(capacity)}, {show(free)} free{over}"


_PAD = " " * 10


def render_hosts_text(view: HostsView) -> str:
    """A table of the hosts, each followed by its capacity and its members per pool."""
    header = f"{'HOST':<9} {'REACHABLE':<9} {'VERSION':<10} {'MEMBERS':>7}  FLAGS"
    lines = [header]
    for r in view.hosts:
        flags = [f for f, on in (("cordoned", r.cordoned), ("evacuate", r.evacuate)) if on]
        if not r.registered:
            flags.append("unregistered")
        reachable = "yes" if r.reachable else "no"
        lines.append(
            f"{r.name:<9} {reachable:<9} {r.version or '-':<10} {r.members:>7}  "
            f"{', '.join(flags) or '-'}"
        )
        if r.error:
            lines.append(f"{_PAD}error: {r.error}")
        cap = r.capacity
        for kind, used, capacity in (
            ("cpus", r.used.cpus, None if cap is None else cap.cpus),
            ("memory", r.used.memory, None if cap is None else cap.memory),
            ("disk", r.used.disk, None if cap is None else cap.disk),
        ):
            lines.append(f"{_PAD}{kind:<7} {_figure(kind, used, capacity)}")
        if r.capacity is None and not r.reachable:
            lines.append(f"{_PAD}capacity unknown: the daemon was not read")
        for p in r.pools:
            detail = ", ".join(f"{n} {phase}" for phase, n in p.phases.items())
            lines.append(f"{_PAD}{p.pool}: {plural(p.members, 'member')} ({detail})")
    for pool, why in sorted(view.unaccounted.items()):
        lines.append(f"pool {pool}: not counted: {why}")
    return "\n".join(lines) + "\n"
