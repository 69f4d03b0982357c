"""Fleet planner properties over generated fleets and histories (Hypothesis).

Random fleets (1-4 hosts, random capacities) run one or two pools through random
histories: daemons that stop answering and come back, hosts powered off and on,
cordons, evacuations, capacity edits and reconciler crashes (nothing in flight is
remembered). Every pass plans the pools as the controller does (each pool's
launches take their room before the next pool places: controller._take_room) and
lands the actions in a model fleet (tests.worlds.FleetWorld) that refuses what the
fleet's rules forbid. After every pass: never two instances of one name across the
fleet, never a launch or delete on a host that cannot be read, never a host's
memory or disk past its capacity once launches land there, nothing foreign
touched. Once the faults stop: every pool reaches desired (or says why it cannot),
off evacuated and disallowed hosts, placed as its ``placement`` says.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from hypothesis import event, given
from hypothesis import strategies as st

from reconciler import ownership
from reconciler.clock import ManualClock
from reconciler.controller import Controller, _take_room
from reconciler.model import HostState, Instance, InstanceState, Node, NodeStatus, Observed
from reconciler.plan import SERVING_PHASES, ActionKind, Plan, PoolWorld, group_by_pool, plan
from reconciler.plan.model import Resources
from reconciler.plan.placement import allowed_hosts, footprint, free_capacity, pool_usage
from reconciler.pools import DEFAULT_PREFIX, PoolVariable, pool_path
from reconciler.spec import PoolSpec, parse_pool_spec
from tests.property.test_plan_props import cases
from tests.worlds import NOW, FleetWorld, GiB, host, spec_items

NAMES = ("host1", "host2", "host3", "host4")
STEP = 30.0  # seconds between passes; unhealthy_timeout is 60s, so a host is lost in 3


# ---------------------------------------------------------------- a single host, as before


@given(cases())
def test_a_single_default_host_plans_exactly_as_the_world_before_hosts(
    case: tuple[PoolSpec, Observed],
) -> None:
    """Today's deployment read by the new observer (one roomy host `default`) plans the
    same actions as before hosts existed: an upgrade causes no churn."""
    s, w = case
    fleet = {"default": host("default", cpus=10**6, memory=10**15, disk=10**16)}
    before = plan(s, w, NOW)
    after = plan(s, replace(w, hosts=fleet), NOW)
    assert after.actions == before.actions
    assert after.notes == before.notes
    assert after.counts == before.counts
    assert after.insufficient_capacity is None and not after.show_hosts
    assert {a.host for a in after.actions} <= {"default"}


# ---------------------------------------------------------------- generated fleets


@st.composite
def host_settings(draw: st.DrawFn, name: str) -> HostState:
    return host(
        name,
        cpus=draw(st.sampled_from([4, 8, 16, 64])),
        memory=draw(st.sampled_from([2, 3, 4, 6, 8, 16])) * GiB,
        disk=draw(st.sampled_from([15, 40, 100, 1000])) * GiB,
    )


@st.composite
def pool_items(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, str]:
    n = draw(st.integers(0, 6))
    items: dict[str, object] = {
        "min": n,
        "max": n,
        "memory": draw(st.sampled_from(["1G", "2G"])),
        "disk": "10G",
        "cpus": draw(st.sampled_from([1, 2])),
        "placement": draw(st.sampled_from(["spread", "pack"])),
        "max_surge": draw(st.integers(0, 2)),
        "max_unavailable": draw(st.integers(0, 1)),
        "max_unhealthy": draw(st.sampled_from(["1", "40%", "100%"])),
        "unhealthy_timeout": "60s",
        "scale_in": draw(st.sampled_from(["least_busy", "newest", "oldest"])),
    }
    if len(names) > 1 and draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
        items["hosts"] = ",".join(chosen)
    elif draw(st.booleans()):
        items["hosts"] = "host*"
    return spec_items(**items)


# One fault: (what, which host by index, a value where it takes one)
FAULTS = st.tuples(
    st.sampled_from(
        [
            "daemon-down",
            "daemon-up",
            "power-off",
            "power-on",
            "cordon",
            "evacuate",
            "capacity",
            "crash",
            "rollout",
            "wait",
        ]
    ),
    st.integers(0, 3),
    st.booleans(),
)
MAINTENANCE = {"cordon", "evacuate", "capacity"}


def unbalancing(what: str, flag: bool) -> bool:
    """Faults after which a pool may stay unevenly placed, by the ordinary rules (each
    launch goes where the placement says then; nothing is moved only to even the pool
    out): maintenance (members moved or kept off a host are not moved back), a
    rollout on hosts with little room (the replacements go where there is room while
    the old members hold the rest), a host whose nodes come back initializing (its
    members, not yet ready, are the surplus scaled in first, as Kubernetes ranks pods
    that are not ready first)."""
    return what in MAINTENANCE or what == "rollout" or (what == "power-on" and flag)


@dataclass
class History:
    hosts: list[HostState]
    items: dict[str, dict[str, str]]  # each pool's variable
    faults: list[tuple[str, int, bool]]
    slow: bool
    settle_first: bool
    capacities: list[HostState] = field(default_factory=list)  # for "capacity" edits


@st.composite
def histories(draw: st.DrawFn) -> History:
    k = draw(st.integers(1, 4))
    names = NAMES[:k]
    hosts = [draw(host_settings(h)) for h in names]
    pools = ["web"] if draw(st.booleans()) else ["web", "db"]
    items = {p: draw(pool_items(names)) for p in pools}
    faults = draw(st.lists(FAULTS, max_size=14))
    capacities = [draw(host_settings(names[i % k])) for i in range(len(faults))]
    return History(hosts, items, faults, draw(st.booleans()), draw(st.booleans()), capacities)


# ---------------------------------------------------------------- one pass, as the controller


def plan_fleet(
    fw: FleetWorld, specs: list[PoolSpec], inflight: frozenset[tuple[str, str]]
) -> dict[str, Plan]:
    """Every pool planned against one observation, sharing the hosts' free room."""
    observed = fw.observe()
    worlds = group_by_pool(observed)
    used: dict[str, Resources] = {}
    for s in specs:
        for h, r in pool_usage(s, worlds.get(s.pool, PoolWorld()), inflight).items():
            used[h] = used.get(h, Resources()) + r
    free = free_capacity(observed.hosts, used)
    plans = {}
    for s in specs:
        p = plan(
            s, observed, fw.now, inflight, world=worlds.get(s.pool, PoolWorld()), free=dict(free)
        )
        _take_room(free, s, p)
        plans[s.pool] = p
    return plans


def vm_hosts(fw: FleetWorld) -> dict[str, str]:
    """Every instance the fleet holds (listed or being prepared) and its host."""
    out = {name: vm.host for name, vm in fw.vms.items()}
    for name, vm in fw.preparing.items():
        assert name not in out, f"{name} twice in the fleet"
        out[name] = vm.host
    return out


def used_on(fw: FleetWorld, specs: dict[str, PoolSpec], h: str) -> Resources:
    total = Resources()
    for name, where in vm_hosts(fw).items():
        pool = fw.pools.get(name)
        if where == h and pool in specs:
            total = total + footprint(specs[pool])
    return total


FOREIGN = ("primary", "nomad-server-1")


class Run:
    """A history being played: the model fleet and what the reconciler remembers."""

    def __init__(self, hist: History) -> None:
        self.fw = FleetWorld(hist.hosts, slow=hist.slow)
        self.items = {p: dict(items) for p, items in hist.items.items()}
        self.index = 10  # the pool variables' ModifyIndex
        self._parse()
        self.inflight: frozenset[tuple[str, str]] = frozenset()
        self.last: dict[str, Plan] = {}
        self.launched_on: list[str] = []
        # Not ours: a hand-made VM on every host (listed like ours) and a Nomad server.
        for h in hist.hosts:
            self.fw.vms[f"primary-{h.name}"] = Instance(
                f"primary-{h.name}", InstanceState.RUNNING, created_at=NOW, host=h.name
            )
        self.fw.nodes["srv"] = Node(id="srv", name="nomad-server-1", status=NodeStatus.READY)

    def _parse(self) -> None:
        self.specs = [
            parse_pool_spec(p, items, index=self.index) for p, items in sorted(self.items.items())
        ]
        self.by_pool = {s.pool: s for s in self.specs}

    def plan_pass(self) -> dict[str, Plan]:
        return plan_fleet(self.fw, self.specs, self.inflight)

    def crash(self) -> None:
        self.inflight = frozenset()  # a fresh controller: nothing in flight is known

    def step(self) -> dict[str, Plan]:
        fw = self.fw
        plans = self.plan_pass()
        launched: set[tuple[str, str]] = set()
        hosts_launched: set[str] = set()
        for pool, p in plans.items():
            for a in p.actions:
                assert not a.instance.startswith(FOREIGN), a
                assert a.node_id != "srv", a
                assert ownership.parse_instance_name(a.instance)[0] == pool  # type: ignore[index]
                if a.kind is ActionKind.LAUNCH:
                    launched.add((a.kind.value, a.instance))
                    hosts_launched.add(a.host)
            fw.apply(self.by_pool[pool], p.actions)  # asserts reachability and no twins
        # Memory and disk never past a host's capacity where the reconciler placed.
        for h in hosts_launched:
            cap = fw.settings[h]
            used = used_on(fw, self.by_pool, h)
            assert used.memory <= cap.memory and used.disk <= cap.disk, (h, used, cap)
            assert used.cpus <= cap.cpus, (h, used, cap)
        vm_hosts(fw)  # never two instances of one name
        for h in fw.settings:
            assert f"primary-{h}" in fw.vms
        assert "srv" in fw.nodes
        self.launched_on += sorted(hosts_launched)
        for p in plans.values():  # what the histories reach (--hypothesis-show-statistics)
            for what, seen in (
                ("a member lost with its host", p.counts["lost"]),
                ("a member displaced", p.counts["displaced"]),
                ("waiting on a host", p.waiting_on_hosts),
                ("insufficient capacity", p.insufficient_capacity),
                ("a launch in flight", self.inflight),
            ):
                if seen:
                    event(what)
        # Launches still being prepared stay in flight (until a crash forgets them).
        self.inflight = frozenset(k for k in self.inflight | launched if k[1] in fw.preparing)
        fw.now += STEP
        fw.land()
        self.last = plans
        return plans

    def settle(self, passes: int = 60) -> dict[str, Plan]:
        quiet = 0
        for _ in range(passes):
            plans = self.step()
            busy = any(p.actions for p in plans.values()) or self.fw.preparing
            quiet = 0 if busy else quiet + 1
            if quiet == 3:
                return plans
        raise AssertionError(
            f"no convergence: {[a for p in self.last.values() for a in p.actions]}"
        )

    def fault(self, what: str, h: str, flag: bool, capacity: HostState) -> None:
        fw = self.fw
        if what == "daemon-down":
            fw.daemon_down.add(h)
        elif what == "daemon-up":
            fw.daemon_down.discard(h)
        elif what == "power-off":
            fw.power_off(h)
        elif what == "power-on":
            # Its nodes are initializing for a pass (flag), or ready at once.
            fw.power_on(h, rejoin=NodeStatus.INITIALIZING if flag else NodeStatus.READY)
        elif what == "cordon":
            fw.settings[h] = replace(fw.settings[h], cordoned=flag)
        elif what == "evacuate":
            fw.settings[h] = replace(fw.settings[h], evacuate=flag)
        elif what == "capacity":
            fw.settings[h] = replace(
                fw.settings[h], cpus=capacity.cpus, memory=capacity.memory, disk=capacity.disk
            )
        elif what == "crash":
            self.crash()
        elif what == "rollout":
            # A new template for every pool (same sizes): each rolls out over the fleet.
            for items in self.items.values():
                items["image"] = "22.04" if items.get("image") == "24.04" else "24.04"
            self.index += 1
            self._parse()

    def heal(self) -> None:
        for h in sorted(self.fw.powered_off):
            self.fw.power_on(h)
        self.fw.daemon_down.clear()


def _room_for(free: Resources, need: Resources) -> bool:
    return free.holds(need)


def check_converged(run: Run, plans: dict[str, Plan], balanced: bool) -> None:
    fw = run.fw
    observed = fw.observe()
    worlds = group_by_pool(observed)
    used: dict[str, Resources] = {}
    for s in run.specs:
        for h, r in pool_usage(s, worlds.get(s.pool, PoolWorld())).items():
            used[h] = used.get(h, Resources()) + r
    free = free_capacity(observed.hosts, used)
    for s in run.specs:
        p = plans[s.pool]
        serving = [m for m in p.members if m.phase in SERVING_PHASES]
        assert all(not m.lost and not m.frozen for m in p.members)
        if p.insufficient_capacity is None:
            assert all(not m.outdated for m in serving), (s.pool, p.notes)
        if p.insufficient_capacity is None:
            assert len(serving) == p.desired, (s.pool, p.notes)
        else:
            # Short of desired, or a member to replace (moved or outdated) waits for room:
            # with max_unavailable 0 a replacement must be placed before its old member goes.
            assert len(serving) < p.desired or any(m.displaced or m.outdated for m in serving)
            assert "cannot be placed" in p.insufficient_capacity
        allowed = set(allowed_hosts(s, fw.settings))
        on = Counter(m.host for m in serving)
        for h, n in on.items():
            evacuated = fw.settings[h].evacuate
            if h not in allowed or evacuated:
                # Moved off unless nowhere else has room (then the pool says so).
                assert p.insufficient_capacity is not None, (s.pool, h, n, p.notes)
        if not balanced or p.insufficient_capacity is not None:
            continue
        need = footprint(s)
        open_hosts = [h for h in sorted(allowed) if not fw.settings[h].cordoned]
        if s.placement == "spread":
            # Even over the allowed hosts, as far as each host's room allows.
            for a in open_hosts:
                for b in open_hosts:
                    if on[a] - on[b] >= 2:
                        assert not _room_for(free[b], need), (s.pool, dict(on), a, b)
        else:
            # Packed: at most one host that holds members has room for another.
            partial = [h for h in open_hosts if on[h] and _room_for(free[h], need)]
            assert len(partial) <= 1, (s.pool, dict(on), partial)


@given(histories())
def test_a_fleet_through_faults_keeps_its_invariants_and_converges(hist: History) -> None:
    run = Run(hist)
    if hist.settle_first:
        run.settle()
    maintenance = False
    for (what, i, flag), capacity in zip(hist.faults, hist.capacities, strict=True):
        h = hist.hosts[i % len(hist.hosts)].name
        run.fault(what, h, flag, capacity)
        maintenance |= unbalancing(what, flag)
        run.step()
    run.heal()
    plans = run.settle()
    # A pool that reached its spec before the faults ends spread (or packed) again: the
    # surplus a returning host brings is taken where the placement has most (fewest).
    check_converged(run, plans, balanced=hist.settle_first and not maintenance)


# ---------------------------------------------------------------- the same, through the controller


class _Pools:
    """The pool variables, as PoolSource.load gives them."""

    prefix = DEFAULT_PREFIX
    nomad = None  # never asked: this load and _Observer.observe ignore the pass's listing

    def __init__(self, run: Run) -> None:
        self.run = run

    async def load(self, only: str | None = None, listing: object = None) -> list[PoolVariable]:
        return [
            PoolVariable(pool, pool_path(DEFAULT_PREFIX, pool), dict(items), self.run.index)
            for pool, items in sorted(self.run.items.items())
            if only in (None, pool)
        ]


class _Observer:
    """The model fleet as Observer reads it: node lists first, full reads on demand."""

    def __init__(self, fw: FleetWorld) -> None:
        self.fw = fw

    async def observe(self, listing: object = None) -> Observed:
        return self.fw.observe()

    async def detail(self, observed: Observed, node_ids: Iterable[str]) -> Observed:
        wanted = set(node_ids)
        return replace(
            observed,
            nodes=tuple(replace(n, detailed=True) if n.id in wanted else n for n in observed.nodes),
        )


class _Executor:
    """What plan_all reads of the executor: the keys of actions under way."""

    def __init__(self) -> None:
        self.inflight: set[tuple[str, str]] = set()


class ControllerRun(Run):
    """A history played through Controller.plan_all: the controller's own accounting of
    each host's room across pools (_fleet_free, _take_room) and its full node reads."""

    def __init__(self, hist: History) -> None:
        super().__init__(hist)
        self.clock = ManualClock(self.fw.now)
        self.controller = self._fresh()

    def _fresh(self) -> Controller:
        return Controller(
            _Pools(self),  # type: ignore[arg-type]
            _Observer(self.fw),  # type: ignore[arg-type]
            _Executor(),  # type: ignore[arg-type]
            self.clock,
            status=None,
            write_status=False,
        )

    def plan_pass(self) -> dict[str, Plan]:
        self.clock.advance(self.fw.now - self.clock.now())
        self.controller.executor.inflight = set(self.inflight)
        pps, _ = asyncio.run(self.controller.plan_all())
        out = {}
        for pp in pps:
            assert pp.error is None and not pp.problems, pp
            assert pp.plan is not None
            out[pp.pool] = pp.plan
        return out

    def crash(self) -> None:
        super().crash()
        self.controller = self._fresh()  # no memory: spec cache, backoffs, node reads


@given(histories())
def test_the_controller_through_fleet_faults_keeps_its_invariants_and_converges(
    hist: History,
) -> None:
    run = ControllerRun(hist)
    if hist.settle_first:
        run.settle()
    maintenance = False
    for (what, i, flag), capacity in zip(hist.faults, hist.capacities, strict=True):
        h = hist.hosts[i % len(hist.hosts)].name
        run.fault(what, h, flag, capacity)
        maintenance |= unbalancing(what, flag)
        run.step()
    run.heal()
    check_converged(run, run.settle(), balanced=hist.settle_first and not maintenance)
