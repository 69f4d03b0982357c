"""Planner properties over generated specs and worlds (Hypothesis)."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from reconciler import ownership
from reconciler.model import Allocation, Instance, InstanceState, Node, NodeStatus, Observed
from reconciler.plan import SERVING_PHASES, Action, ActionKind, Phase, Plan, drain_meta, plan
from reconciler.spec import PoolSpec
from tests.worlds import NOW, spec

OLD_HASH = "zzzzz"


@st.composite
def specs(draw: st.DrawFn) -> PoolSpec:
    lo = draw(st.integers(0, 4))
    hi = draw(st.integers(max(lo, 1), 6))
    items: dict[str, object] = {
        "min": lo,
        "max": hi,
        "max_surge": draw(st.integers(0, 2)),
        "max_unavailable": draw(st.integers(0, 2)),
        "scale_in": draw(
            st.sampled_from(["least_busy", "empty", "empty_ignore_system", "newest", "oldest"])
        ),
        "node_purge": draw(st.booleans()),
        "drain_ignore_system_jobs": draw(st.booleans()),
    }
    if draw(st.booleans()):
        items["count"] = draw(st.integers(0, 8))
    s = spec("web", **items)
    # Set past the parser: it refuses 0 (Nomad reads 0 as "no deadline"), but the
    # planner must not read it as "already past" either if one ever gets through.
    return replace(s, drain_deadline=draw(st.sampled_from([0.0, 1.0, 60.0, 600.0, 3600.0])))


@st.composite
def worlds(draw: st.DrawFn, s: PoolSpec) -> Observed:
    instances: list[Instance] = []
    nodes: list[Node] = []
    allocs: list[Allocation] = []
    n = draw(st.integers(0, 8))
    for ordinal in range(n):
        thash = draw(st.sampled_from([s.template_hash, OLD_HASH]))
        name = ownership.instance_name(s.pool, thash, ordinal)
        has_instance = draw(st.booleans()) or True
        state = draw(
            st.sampled_from(
                [InstanceState.RUNNING] * 4
                + [InstanceState.STARTING, InstanceState.STOPPED, InstanceState.DELETED]
            )
        )
        if has_instance and draw(st.integers(0, 9)) > 0:
            instances.append(Instance(name, state, created_at=NOW - draw(st.integers(0, 4000))))
        if draw(st.integers(0, 4)) == 0:
            continue  # no node (yet)
        status = draw(
            st.sampled_from([NodeStatus.READY] * 4 + [NodeStatus.INITIALIZING, NodeStatus.DOWN])
        )
        drain = draw(st.sampled_from(["none", "none", "ours", "ours-done", "theirs"]))
        dmeta = (
            drain_meta(s, "t")
            if drain.startswith("ours")
            else ({"by": "ops"} if drain == "theirs" else {})
        )
        meta = {ownership.META_POOL: s.pool}
        if draw(st.integers(0, 6)) == 0:
            meta[ownership.META_PROTECT] = "true"
        # Our drain's deadline as Nomad reports it, or only its start (the planner
        # then adds the spec's drain_deadline).
        deadline_at = started_at = None
        if drain == "ours":
            if draw(st.booleans()):
                deadline_at = NOW + draw(st.integers(-100, 100))
            else:
                started_at = NOW - draw(st.integers(0, 4000))
        node = Node(
            id=f"n{ordinal}",
            name=name,
            status=status,
            eligible=drain == "none",
            draining=drain in ("ours", "theirs"),
            drain_meta=dmeta,
            drain_started_at=started_at,
            drain_deadline_at=deadline_at,
            last_drain_status="complete" if drain == "ours-done" else None,
            meta=meta,
            cpu_mhz=4000,
            memory_mb=4096,
            status_updated_at=NOW - draw(st.integers(0, 1000)),
        )
        nodes.append(node)
        for k in range(draw(st.integers(0, 3))):
            allocs.append(
                Allocation(
                    id=f"a{ordinal}-{k}",
                    node_id=node.id,
                    job_id=f"j{k}",
                    job_type=draw(st.sampled_from(["service", "system", "batch"])),
                    cpu_mhz=draw(st.integers(100, 1000)),
                    memory_mb=draw(st.integers(64, 1024)),
                )
            )
    # Things that are not ours: a hand-made VM, a Nomad server, another pool's members,
    # and a node whose name looks like ours but whose meta does not say so.
    instances += [
        Instance("primary", InstanceState.RUNNING),
        Instance(f"db-{s.template_hash}-0", InstanceState.RUNNING),
    ]
    nodes += [
        Node(id="srv", name="nomad-server-1", status=NodeStatus.DOWN),
        Node(
            id="other",
            name=f"db-{s.template_hash}-0",
            status=NodeStatus.DOWN,
            meta={ownership.META_POOL: "db"},
        ),
        Node(
            id="lookalike",
            name=f"{s.pool}-{s.template_hash}-99",
            status=NodeStatus.DOWN,
            meta={ownership.META_POOL: "someone-else"},
        ),
    ]
    return Observed(tuple(instances), tuple(nodes), tuple(allocs), at=NOW)


@st.composite
def cases(draw: st.DrawFn) -> tuple[PoolSpec, Observed]:
    s = draw(specs())
    return s, draw(worlds(s))


FOREIGN_NAMES = {"primary", "nomad-server-1"}
FOREIGN_NODE_IDS = {"srv", "other", "lookalike"}


@given(cases())
def test_never_touches_what_is_not_ours(case: tuple[PoolSpec, Observed]) -> None:
    s, w = case
    p = plan(s, w, NOW)
    for a in p.actions:
        assert a.instance not in FOREIGN_NAMES
        assert not a.instance.startswith("db-")
        assert a.node_id not in FOREIGN_NODE_IDS
        parsed = ownership.parse_instance_name(a.instance)
        assert parsed is not None and parsed[0] == s.pool


@given(cases())
def test_protected_and_held_members_are_never_disrupted(case: tuple[PoolSpec, Observed]) -> None:
    s, w = case
    p = plan(s, w, NOW)
    untouchable = {m.name for m in p.members if m.protected or m.phase is Phase.HELD}
    for a in p.actions:
        if a.kind in (ActionKind.DRAIN, ActionKind.DELETE):
            member = next(m for m in p.members if m.name == a.instance)
            # A deleted-but-unpurged instance is already gone as far as anyone is concerned.
            if member.phase is not Phase.DELETING:
                assert a.instance not in untouchable


def _instance_total_after(p: Plan) -> int:
    existing = sum(1 for m in p.members if m.phase is not Phase.NODE_ONLY)
    return existing + sum(a.kind is ActionKind.LAUNCH for a in p.actions)


@given(cases(), st.sets(st.integers(0, 6)))
def test_never_launches_beyond_max_plus_surge_counting_inflight(
    case: tuple[PoolSpec, Observed], inflight_ordinals: set[int]
) -> None:
    s, w = case
    inflight = [
        ("launch", ownership.instance_name(s.pool, s.template_hash, o)) for o in inflight_ordinals
    ]
    p = plan(s, w, NOW, inflight)
    launches = [a for a in p.actions if a.kind is ActionKind.LAUNCH]
    if launches:
        surge = max(1, s.max_surge.resolve(p.desired, round_up=True))
        assert _instance_total_after(p) <= s.max + surge
        replacing = any(m.outdated or m.unhealthy for m in p.members if m.phase in SERVING_PHASES)
        if not replacing:
            assert _instance_total_after(p) <= s.max
    # Launches never reuse a name that exists or is in flight.
    taken = {m.name for m in p.members}
    assert not {a.instance for a in launches} & taken


@given(cases())
def test_never_deletes_a_busy_instance_before_its_drain_is_done(
    case: tuple[PoolSpec, Observed],
) -> None:
    s, w = case
    p = plan(s, w, NOW)
    live_by_node: dict[str, list[Allocation]] = {}
    for alloc in w.allocations:
        live_by_node.setdefault(alloc.node_id, []).append(alloc)
    for a in p.actions:
        if a.kind is not ActionKind.DELETE:
            continue
        member = next(m for m in p.members if m.name == a.instance)
        node = member.node
        if node is None or node.status not in (NodeStatus.READY, NodeStatus.INITIALIZING):
            continue
        if member.phase is Phase.DELETING:
            continue
        blocking = [
            x
            for x in live_by_node.get(node.id, [])
            if not (s.drain_ignore_system_jobs and x.job_type == "system")
        ]
        if blocking:
            deadline_at = node.drain_deadline_at
            if deadline_at is None and node.drain_started_at is not None and s.drain_deadline:
                deadline_at = node.drain_started_at + s.drain_deadline  # 0: no deadline
            past_deadline = deadline_at is not None and deadline_at <= NOW
            our_drain_done = not node.draining and node.last_drain_status == "complete"
            assert (node.draining and past_deadline) or our_drain_done, f"{a}: busy node mid-drain"
            assert node.drain_meta.get(ownership.DRAIN_META_POOL) == s.pool


@given(
    started_ago=st.integers(0, 4000),
    deadline=st.sampled_from([0.0, 1.0, 60.0, 600.0, 3600.0]),
    busy=st.booleans(),
)
def test_a_drain_known_by_its_start_only_ends_at_the_spec_deadline(
    started_ago: int, deadline: float, busy: bool
) -> None:
    """Nomad's node list may give a drain's start but no deadline: the spec's then
    counts from the start, and a zero one (Nomad: no deadline) never ends it."""
    s = replace(spec(min=1, max=1), drain_deadline=deadline)  # the parser refuses 0
    keep = ownership.instance_name(s.pool, s.template_hash, 0)
    name = ownership.instance_name(s.pool, s.template_hash, 1)
    nodes = (
        Node(id="n0", name=keep, status=NodeStatus.READY, meta={ownership.META_POOL: s.pool}),
        Node(
            id="n1",
            name=name,
            status=NodeStatus.READY,
            eligible=False,
            draining=True,
            drain_meta=drain_meta(s, "scale down"),
            drain_started_at=NOW - started_ago,
            meta={ownership.META_POOL: s.pool},
        ),
    )
    instances = tuple(
        Instance(n, InstanceState.RUNNING, created_at=NOW - 9999) for n in (keep, name)
    )
    allocs = (Allocation("a", "n1", "job"),) if busy else ()
    p = plan(s, Observed(instances, nodes, allocs, at=NOW), NOW)
    deleted = any(a.kind is ActionKind.DELETE and a.instance == name for a in p.actions)
    assert deleted == (not busy or (deadline > 0 and started_ago >= deadline))


@given(cases())
def test_plan_is_deterministic_and_order_independent(case: tuple[PoolSpec, Observed]) -> None:
    s, w = case
    shuffled = list(w.instances), list(w.nodes), list(w.allocations)
    rng = random.Random(0)
    for part in shuffled:
        rng.shuffle(part)
    w2 = replace(
        w, instances=tuple(shuffled[0]), nodes=tuple(shuffled[1]), allocations=tuple(shuffled[2])
    )
    assert plan(s, w, NOW).actions == plan(s, w2, NOW).actions == plan(s, w, NOW).actions


def _remove(a: Action, instances: dict[str, Instance], nodes: dict[str, Node], now: float) -> None:
    """A delete takes the VM (its node goes down); a purge takes the node record."""
    if a.kind is ActionKind.DELETE:
        instances.pop(a.instance, None)
        for nid, n in list(nodes.items()):
            if n.name == a.instance:
                nodes[nid] = replace(n, status=NodeStatus.DOWN, status_updated_at=now)
    elif a.kind is ActionKind.PURGE_NODE:
        assert a.node_id is not None
        nodes.pop(a.node_id, None)


def _apply(s: PoolSpec, w: Observed, p: Plan, now: float) -> Observed:
    """A model world: each action takes effect by the next pass; new VMs join as ready nodes.

    Drains already under way finish too (Nomad migrates the work away): with a zero
    drain_deadline nothing else would end them.
    """
    instances = {i.name: i for i in w.instances}
    nodes = {n.id: n for n in w.nodes}
    allocs = list(w.allocations)
    for nid, n in list(nodes.items()):
        if n.draining:
            nodes[nid] = replace(n, draining=False, last_drain_status="complete")
            allocs = [x for x in allocs if x.node_id != nid]
    for a in p.actions:
        if a.kind is ActionKind.LAUNCH:
            instances[a.instance] = Instance(a.instance, InstanceState.RUNNING, created_at=now)
            nid = f"new-{a.instance}"
            nodes[nid] = Node(
                id=nid,
                name=a.instance,
                status=NodeStatus.READY,
                meta={ownership.META_POOL: s.pool},
                cpu_mhz=4000,
                memory_mb=4096,
                create_index=int(now),
            )
        elif a.kind is ActionKind.DRAIN:
            assert a.node_id is not None
            n = nodes[a.node_id]
            # Drains finish by the next pass: allocations migrate away.
            nodes[a.node_id] = replace(
                n,
                eligible=False,
                draining=False,
                drain_meta=drain_meta(s, a.reason),
                last_drain_status="complete",
            )
            allocs = [x for x in allocs if x.node_id != a.node_id]
        else:
            _remove(a, instances, nodes, now)
    return Observed(tuple(instances.values()), tuple(nodes.values()), tuple(allocs), at=now)


def _healthy_world(s: PoolSpec, w: Observed) -> Observed:
    """The part of a world the convergence property is about: no operator holds or protections."""
    nodes = tuple(
        replace(n, meta={k: v for k, v in n.meta.items() if k != ownership.META_PROTECT})
        for n in w.nodes
        if n.drain_meta.get("by") != "ops"
    )
    instances = tuple(i for i in w.instances if i.state is not InstanceState.STOPPED)
    return replace(w, nodes=nodes, instances=instances)


@given(cases())
def test_applying_plans_converges_to_an_empty_plan(case: tuple[PoolSpec, Observed]) -> None:
    s, w = case
    w = _healthy_world(s, w)
    now = NOW
    idle = 0
    for _ in range(40):
        p = plan(s, w, now)
        if p.stalled is not None:
            # What the stall note asks of a person: delete the instance to retry (a
            # relaunch joins in this model world).
            assert any(f"rollout stalled: {p.stalled}" in n for n in p.notes)
            # Only removals already under way finish; nothing is launched or drained.
            assert {a.kind for a in p.actions} <= {ActionKind.DELETE, ActionKind.PURGE_NODE}
            kept = tuple(i for i in w.instances if i.name != p.stalled)
            w = replace(w, instances=kept)
        # An empty plan may only be waiting (a VM still joining): let time pass once more.
        idle = idle + 1 if not p.actions and p.stalled is None else 0
        if idle == 2:
            break
        w = _apply(s, w, p, now)
        now += 3600  # drains, deadlines and join timeouts have passed by the next look
    else:
        raise AssertionError(f"no convergence; last plan {p.actions}")
    if any("short-circuited" in n or "none can be removed" in n for n in p.notes):
        return  # held back on purpose (short-circuit, or `empty` scale-in with busy nodes)
    serving = [m for m in p.members if m.phase in SERVING_PHASES]
    assert len(serving) == p.desired
    assert all(not m.outdated for m in serving)


def _rollout_step(s: PoolSpec, w: Observed, p: Plan, now: float) -> Observed:
    """A slower model world for rollouts: a launched VM joins one pass later, a drain
    completes one pass later, so the limits are tested while things are in flight."""
    instances = {i.name: i for i in w.instances}
    nodes = {n.id: n for n in w.nodes}
    # What the previous pass started lands now.
    for name, inst in list(instances.items()):
        if inst.state is InstanceState.STARTING:
            instances[name] = replace(inst, state=InstanceState.RUNNING)
            nodes[f"new-{name}"] = Node(
                id=f"new-{name}",
                name=name,
                status=NodeStatus.READY,
                meta={ownership.META_POOL: s.pool},
                cpu_mhz=4000,
                memory_mb=4096,
                create_index=int(now),
            )
    for nid, n in list(nodes.items()):
        if n.draining:
            nodes[nid] = replace(n, draining=False, last_drain_status="complete")
    for a in p.actions:
        if a.kind is ActionKind.LAUNCH:
            instances[a.instance] = Instance(a.instance, InstanceState.STARTING, created_at=now)
        elif a.kind is ActionKind.DRAIN:
            assert a.node_id is not None
            nodes[a.node_id] = replace(
                nodes[a.node_id], eligible=False, draining=True, drain_meta=drain_meta(s, "r")
            )
        else:
            _remove(a, instances, nodes, now)
    return Observed(tuple(instances.values()), tuple(nodes.values()), (), at=now)


@given(
    desired=st.integers(1, 6),
    surge=st.integers(0, 3),
    unavailable=st.integers(0, 3),
    protected=st.sets(st.integers(0, 5), max_size=2),
)
def test_a_rollout_stays_within_surge_and_unavailable_and_finishes(
    desired: int, surge: int, unavailable: int, protected: set[int]
) -> None:
    s = spec(min=desired, max=desired, max_surge=surge, max_unavailable=unavailable)
    instances, nodes = [], []
    for i in range(desired):
        name = ownership.instance_name(s.pool, OLD_HASH, i)
        instances.append(Instance(name, InstanceState.RUNNING, created_at=NOW - 3600))
        meta = {ownership.META_POOL: s.pool}
        if i in protected:
            meta[ownership.META_PROTECT] = "true"
        nodes.append(Node(id=f"n{i}", name=name, status=NodeStatus.READY, meta=meta))
    w = Observed(tuple(instances), tuple(nodes), (), at=NOW)
    # As Kubernetes: with both limits 0 a rollout surges by one so it can progress.
    ceiling = desired + (surge if surge or unavailable else 1)
    floor = desired - min(unavailable, desired)
    now = NOW
    for _ in range(8 * desired + 8):
        p = plan(s, w, now)
        w = _rollout_step(s, w, p, now)
        now += 60
        vms = [i for i in w.instances if i.name.startswith("web-")]
        serving = [n for n in w.nodes if n.status is NodeStatus.READY and n.eligible]
        assert len(vms) <= ceiling, (len(vms), ceiling)
        assert len(serving) >= floor, (len(serving), floor)
        if not p.actions and p.counts["pending"] == 0 and p.counts["draining"] == 0:
            break
    else:
        raise AssertionError(f"the rollout never settled; last plan {p.actions}")
    # Settled for good: protected members count toward desired as they are, so no
    # replacement is launched for them only to be scaled in again.
    for _ in range(3):
        now += 60
        assert plan(s, w, now).actions == ()
    kept = {ownership.instance_name(s.pool, OLD_HASH, i) for i in protected if i < desired}
    old = {i.name for i in w.instances if OLD_HASH in i.name}
    assert old == kept  # every unprotected old member was replaced, protected ones kept
    assert len([i for i in w.instances if i.name.startswith("web-")]) == desired
    if kept:
        assert any("protected members block replacement" in n for n in p.notes)
        assert set(p.blocked) == kept


@given(
    desired=st.integers(1, 8),
    down=st.integers(0, 8),
    max_unhealthy=st.sampled_from(["0", "1", "2", "40%", "100%"]),
)
def test_the_short_circuit_holds(desired: int, down: int, max_unhealthy: str) -> None:
    down = min(down, desired)
    s = spec(min=desired, max=desired, max_unhealthy=max_unhealthy, unhealthy_timeout="5m")
    instances, nodes = [], []
    for i in range(desired):
        name = ownership.instance_name(s.pool, s.template_hash, i)
        instances.append(Instance(name, InstanceState.RUNNING, created_at=NOW - 3600))
        status = NodeStatus.DOWN if i < down else NodeStatus.READY
        nodes.append(
            Node(id=f"n{i}", name=name, status=status, status_updated_at=NOW - 400, meta={})
        )
    p = plan(s, Observed(tuple(instances), tuple(nodes), (), at=NOW), NOW)
    # Written out, not computed: 40% rounds up (ceil), so a 1- or 2-member pool
    # may still replace one failed member.
    forty = {1: 1, 2: 1, 3: 2, 4: 2, 5: 2, 6: 3, 7: 3, 8: 4}
    limit = {"0": 0, "1": 1, "2": 2, "40%": forty[desired], "100%": desired}[max_unhealthy]
    assert p.counts["unhealthy"] == down
    if down > limit:
        assert p.actions == ()  # nothing launched, nothing removed: wait for a person
        assert any("short-circuited" in n for n in p.notes)
    elif down:
        assert [a.kind for a in p.actions] == [ActionKind.LAUNCH]  # launch first


@given(cases(), st.integers(0, 10))
def test_a_partial_scale_in_order_is_the_head_of_the_full_one(
    case: tuple[PoolSpec, Observed], limit: int
) -> None:
    from reconciler.plan import join
    from reconciler.plan.scale_in import STRATEGIES, order_for_scale_in

    s, w = case
    members, _ = join(s, w, NOW)
    for strategy in STRATEGIES:
        full = order_for_scale_in(strategy, members)
        assert order_for_scale_in(strategy, members, limit=limit) == full[:limit]


@given(cases())
def test_the_counts_say_how_many_members_are_in_each_phase_and_state(
    case: tuple[PoolSpec, Observed],
) -> None:
    s, w = case
    p = plan(s, w, NOW)
    members = p.members
    # Counted here the slow way, one question at a time, against the planner's one walk.
    expected = {phase.value: sum(1 for m in members if m.phase is phase) for phase in Phase}
    expected["outdated"] = sum(1 for m in members if m.outdated and m.phase in SERVING_PHASES)
    expected["unhealthy"] = sum(1 for m in members if m.unhealthy is not None)
    expected["protected"] = sum(1 for m in members if m.protected)
    expected["lost"] = sum(1 for m in members if m.lost)
    expected["displaced"] = sum(1 for m in members if m.displaced is not None)
    expected["instances"] = sum(1 for m in members if m.phase is not Phase.NODE_ONLY)
    assert p.counts == expected
    assert all(type(k) is str for k in p.counts)  # plain keys: the status and JSON read them
