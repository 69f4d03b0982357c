"""The planner on hand-built worlds: one behaviour per test."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler import ownership
from reconciler.model import Instance, InstanceState, Node, NodeStatus
from reconciler.plan import ActionKind, Phase, Plan, max_unhealthy_for, plan
from tests.worlds import NOW, alloc, host, instance, node, ready_member, spec, world


def kinds(p) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(a.kind.value, a.instance) for a in p.actions]


def test_empty_pool_launches_min_with_lowest_ordinals() -> None:
    s = spec(min=3, max=5)
    p = plan(s, world(), NOW)
    assert p.desired == 3
    assert kinds(p) == [("launch", f"web-{s.template_hash}-{i}") for i in range(3)]


def test_launch_reuses_the_lowest_free_ordinal() -> None:
    s = spec(min=3)
    i0, n0 = ready_member(s, 0)
    i2, n2 = ready_member(s, 2)
    p = plan(s, world([i0, i2], [n0, n2]), NOW)
    assert kinds(p) == [("launch", f"web-{s.template_hash}-1")]


def test_inflight_launches_count_and_are_not_repeated() -> None:
    s = spec(min=3)
    name = f"web-{s.template_hash}-0"
    p = plan(s, world(), NOW, inflight=[("launch", name)])
    assert [a.instance for a in p.actions] == [
        f"web-{s.template_hash}-1",
        f"web-{s.template_hash}-2",
    ]


def test_converged_pool_plans_nothing() -> None:
    s = spec(min=2)
    members = [ready_member(s, i) for i in range(2)]
    p = plan(s, world([m[0] for m in members], [m[1] for m in members]), NOW)
    assert p.actions == ()
    assert (p.counts["ready"], p.counts["instances"], p.counts["node-only"]) == (2, 2, 0)


def test_count_is_used_and_clamped() -> None:
    s = spec(min=1, max=4, count=9)
    p = plan(s, world(), NOW)
    assert p.desired == 4
    assert "clamped" in p.desired_reason


def test_scale_down_drains_the_least_busy_with_deadline_and_our_meta() -> None:
    s = spec(min=1, max=5, drain_deadline="15m")
    members = [ready_member(s, i) for i in range(2)]
    busy = members[0][1]
    p = plan(
        s,
        world(
            [m[0] for m in members], [m[1] for m in members], [alloc(busy.id, 0), alloc(busy.id, 1)]
        ),
        NOW,
    )
    assert len(p.actions) == 1
    a = p.actions[0]
    assert a.kind is ActionKind.DRAIN
    assert a.instance == members[1][0].name
    assert a.deadline_s == 900
    assert a.node_id == members[1][1].id


def test_pending_instances_go_before_ready_ones_on_scale_down() -> None:
    s = spec(min=1, max=5)
    ready = ready_member(s, 0)
    pending = instance(f"web-{s.template_hash}-1", age=10)
    p = plan(s, world([ready[0], pending], [ready[1]]), NOW)
    assert kinds(p) == [("delete", pending.name)]


def test_our_finished_drain_leads_to_delete_then_purge() -> None:
    s = spec(min=1, max=5)
    keep = ready_member(s, 0)
    name = f"web-{s.template_hash}-1"
    drained = node(name, eligible=False, drain_by=s, last_drain_status="complete")
    p = plan(s, world([keep[0], instance(name)], [keep[1], drained]), NOW)
    assert kinds(p) == [("delete", name)]
    # Once the instance is gone, the node record is purged.
    p2 = plan(s, world([keep[0]], [keep[1], drained]), NOW)
    assert [(a.kind, a.node_id) for a in p2.actions] == [(ActionKind.PURGE_NODE, drained.id)]


def test_drain_in_progress_waits_until_done_or_deadline() -> None:
    s = spec(min=1, max=5)
    keep = ready_member(s, 0)
    name = f"web-{s.template_hash}-1"
    draining = node(name, eligible=False, draining=True, drain_by=s, deadline_at=NOW + 60)
    w = world([keep[0], instance(name)], [keep[1], draining], [alloc(draining.id)])
    assert plan(s, w, NOW).actions == ()
    # Past the deadline the instance goes even with allocations left.
    assert kinds(plan(s, w, NOW + 61)) == [("delete", name)]


@pytest.mark.parametrize(
    ("ignore_system", "job_type", "done"),
    [(True, "system", True), (False, "system", False), (True, "service", False)],
)
def test_system_jobs_left_on_a_draining_node_end_the_drain_only_when_ignored(
    ignore_system: bool, job_type: str, done: bool
) -> None:
    s = spec(min=1, max=5, drain_ignore_system_jobs=ignore_system)
    keep = ready_member(s, 0)
    name = f"web-{s.template_hash}-1"
    draining = node(name, eligible=False, draining=True, drain_by=s, deadline_at=NOW + 600)
    left = alloc(draining.id, job_type=job_type)
    p = plan(s, world([keep[0], instance(name)], [keep[1], draining], [left]), NOW)
    assert kinds(p) == ([("delete", name)] if done else [])
    assert p.counts["drained" if done else "draining"] == 1


def test_a_drain_on_a_host_that_cannot_be_read_is_judged_by_its_allocations() -> None:
    s = spec(min=1, max=5)
    keep = ready_member(s, 0)
    name = ownership.instance_name("web", s.template_hash, 1, "host2")
    draining = node(name, eligible=False, draining=True, drain_by=s, deadline_at=NOW + 600)
    fleet = [host("default"), host("host2", reachable=False)]
    busy = world([keep[0], instance(name)], [keep[1], draining], [alloc(draining.id)], fleet)
    p = plan(s, busy, NOW)
    assert (p.counts["draining"], p.counts["drained"]) == (1, 0)
    p = plan(s, world([keep[0], instance(name)], [keep[1], draining], [], fleet), NOW)
    assert (p.counts["draining"], p.counts["drained"]) == (0, 1)
    assert p.waiting_on_hosts == ("host2",)  # its delete waits for the daemon


def test_node_purge_off_leaves_node_records() -> None:
    s = spec(min=1, max=5, node_purge=False)
    keep = ready_member(s, 0)
    gone = node(f"web-{s.template_hash}-1", status=NodeStatus.DOWN)
    assert plan(s, world([keep[0]], [keep[1], gone]), NOW).actions == ()


def test_a_drain_by_someone_else_is_left_alone() -> None:
    s = spec(min=1, max=5)
    keep = ready_member(s, 0)
    name = f"web-{s.template_hash}-1"
    theirs = node(name, eligible=False, draining=True, foreign_drain=True)
    p = plan(s, world([keep[0], instance(name)], [keep[1], theirs]), NOW)
    assert p.actions == ()
    assert {m.name: m.phase for m in p.members}[name] is Phase.HELD


@pytest.mark.parametrize(
    "meta",
    [
        # Our pool's name without the reconciler's mark (a person's drain, say) ...
        {ownership.DRAIN_META_POOL: "web", "reason": "kernel upgrade"},
        # ... and the reconciler's mark for another pool.
        {
            ownership.DRAIN_META_OWNER: ownership.DRAIN_META_OWNER_VALUE,
            ownership.DRAIN_META_POOL: "db",
        },
    ],
)
def test_a_drain_is_ours_only_with_our_mark_and_our_pool(meta: dict[str, str]) -> None:
    s = spec(min=1, max=5)
    keep = ready_member(s, 0)
    name = f"web-{s.template_hash}-1"
    theirs = dataclasses.replace(node(name, eligible=False, draining=True), drain_meta=meta)
    p = plan(s, world([keep[0], instance(name)], [keep[1], theirs]), NOW)
    assert p.actions == ()
    assert {m.name: m.phase for m in p.members}[name] is Phase.HELD


def test_a_node_someone_else_drained_to_completion_is_held_not_deleted() -> None:
    s = spec(min=1, max=5)
    keep = ready_member(s, 0)
    name = f"web-{s.template_hash}-1"
    theirs = node(name, eligible=False, foreign_drain=True, last_drain_status="complete")
    p = plan(s, world([keep[0], instance(name)], [keep[1], theirs]), NOW)
    assert p.actions == ()
    assert {m.name: m.phase for m in p.members}[name] is Phase.HELD


@pytest.mark.parametrize("last_drain_status", ["complete", "draining"])
def test_our_drain_that_left_the_node_ineligible_is_done(last_drain_status: str) -> None:
    """Nomad clears the draining flag when a drain ends; its last status says how it went."""
    s = spec(min=1, max=5)
    keep = ready_member(s, 0)
    name = f"web-{s.template_hash}-1"
    ours = node(name, eligible=False, drain_by=s, last_drain_status=last_drain_status)
    p = plan(s, world([keep[0], instance(name)], [keep[1], ours]), NOW)
    assert [(a.kind.value, a.instance, a.reason) for a in p.actions] == [
        ("delete", name, "drain complete")
    ]


def test_foreign_instances_and_nodes_are_never_members() -> None:
    s = spec(min=0, max=5)
    foreign = [
        instance("primary"),
        instance("nomad-server-1"),
        instance(f"db-{s.template_hash}-0"),  # another pool's
    ]
    nodes = [
        node("nomad-server-1", pool="", status=NodeStatus.DOWN),
        node(
            f"web-{s.template_hash}-7", pool="other", status=NodeStatus.DOWN
        ),  # meta says not ours
    ]
    p = plan(s, world(foreign, nodes), NOW)
    assert p.members == ()
    assert p.actions == ()


def test_paused_plans_nothing_and_says_so() -> None:
    s = spec(min=3, paused=True)
    p = plan(s, world(), NOW)
    assert p.actions == ()
    assert p.paused
    assert any("paused" in n for n in p.notes)


def test_outdated_members_roll_within_surge_and_unavailable() -> None:
    s = spec(min=3, max=3, max_surge=1, max_unavailable=0)
    old = [ready_member(s, i, thash="bcdfg") for i in range(3)]
    w = world([m[0] for m in old], [m[1] for m in old])
    p = plan(s, w, NOW)
    # Surge first: one new instance, nothing drained while availability would drop.
    assert kinds(p) == [("launch", f"web-{s.template_hash}-0")]
    new = ready_member(s, 0)
    p2 = plan(s, world([m[0] for m in old] + [new[0]], [m[1] for m in old] + [new[1]]), NOW)
    assert [a.kind for a in p2.actions] == [ActionKind.DRAIN]


def test_protected_members_are_never_scaled_in() -> None:
    s = spec(min=1, max=5)
    members = [ready_member(s, i) for i in range(2)]
    protected = node(members[0][0].name, meta={ownership.META_PROTECT: "true"})
    other = members[1][1]
    p = plan(s, world([m[0] for m in members], [protected, other], [alloc(other.id)]), NOW)
    assert [a.instance for a in p.actions] == [members[1][0].name]


def test_deleted_but_not_purged_instances_are_purged() -> None:
    s = spec(min=0, max=5)
    name = f"web-{s.template_hash}-0"
    p = plan(s, world([instance(name, state=InstanceState.DELETED)]), NOW)
    assert kinds(p) == [("delete", name)]


def test_never_joined_instance_is_replaced_launch_first() -> None:
    s = spec(min=2, max=3, join_timeout="10m")
    ok = ready_member(s, 0)
    stuck = instance(f"web-{s.template_hash}-1", age=601)
    p = plan(s, world([ok[0], stuck], [ok[1]]), NOW)
    assert kinds(p) == [("launch", f"web-{s.template_hash}-2")]
    assert p.counts["unhealthy"] == 1


def test_a_stopped_vm_is_replaced_only_after_unhealthy_timeout() -> None:
    s = spec(min=2, max=3, unhealthy_timeout="5m")
    ok = ready_member(s, 0)
    vm, its_node = ready_member(s, 1)
    stopped = dataclasses.replace(vm, state=InstanceState.STOPPED, broken_since=NOW - 299)
    p = plan(s, world([ok[0], stopped], [ok[1], its_node]), NOW)
    assert p.actions == () and p.counts["unhealthy"] == 0  # may be a reboot: wait
    long_stopped = dataclasses.replace(stopped, broken_since=NOW - 301)
    p = plan(s, world([ok[0], long_stopped], [ok[1], its_node]), NOW)
    assert kinds(p) == [("launch", f"web-{s.template_hash}-2")]
    assert p.counts["unhealthy"] == 1


def test_the_planner_is_deterministic() -> None:
    s = spec(min=2, max=4)
    members = [ready_member(s, i) for i in range(4)]
    w = world([m[0] for m in members], [m[1] for m in members])
    assert plan(s, w, NOW) == plan(s, w, NOW)


# ---------------------------------------------------------------- protected members


def test_a_protected_outdated_member_counts_as_it_is_and_gets_no_replacement() -> None:
    s = spec(min=3, max=3)
    kept_old = ready_member(s, 0, thash="bcdfg")
    kept = (kept_old[0], node(kept_old[0].name, meta={ownership.META_PROTECT: "true"}))
    current = [ready_member(s, i) for i in (1, 2)]
    members = [kept, *current]
    p = plan(s, world([m[0] for m in members], [m[1] for m in members]), NOW)
    # A replacement launched for it would only be scaled in again, pass after pass.
    assert p.actions == ()
    assert p.blocked == (kept[0].name,)
    assert f"protected members block replacement: {kept[0].name}" in p.notes


def test_a_protected_unhealthy_member_is_neither_replaced_nor_removed() -> None:
    s = spec(min=3, max=4, unhealthy_timeout="5m")
    sick = ready_member(s, 0)
    meta = {ownership.META_PROTECT: "true"}
    sick_node = node(sick[0].name, status=NodeStatus.DOWN, status_age=3600, meta=meta)
    others = [ready_member(s, i) for i in (1, 2)]
    w = world([sick[0], *(m[0] for m in others)], [sick_node, *(m[1] for m in others)])
    p = plan(s, w, NOW)
    assert p.counts["unhealthy"] == 1
    assert p.actions == ()
    assert p.blocked == (sick[0].name,)


# ---------------------------------------------------------------- outdated members that are down


def _old_pool_down(status_age: float) -> tuple[list[Instance], list[Node]]:
    """Five members of ``spec(count=5, max=5)``, all with nodes down for ``status_age`` s."""
    old = spec(count=5, max=5)
    instances, nodes = [], []
    for i in range(5):
        name = ownership.instance_name("web", old.template_hash, i)
        instances.append(instance(name))
        nodes.append(node(name, status=NodeStatus.DOWN, status_age=status_age))
    return instances, nodes


def test_an_edit_during_a_network_split_deletes_no_down_member_at_once() -> None:
    # Down for 30 s: not yet unhealthy, and a disconnected client may still run its work.
    instances, nodes = _old_pool_down(status_age=30)
    new = spec(count=5, max=5, image="jammy")
    p = plan(new, world(instances, nodes), NOW)
    assert kinds(p) == [("launch", f"web-{new.template_hash}-0")]  # surge only


def test_an_outdated_down_member_goes_once_the_ready_ones_meet_the_floor() -> None:
    s = spec(min=3, max=3)
    old = ready_member(s, 0, thash="bcdfg")
    down = node(old[0].name, status=NodeStatus.DOWN, status_age=30)
    current = [ready_member(s, i) for i in (1, 2, 3)]
    w = world([old[0], *(m[0] for m in current)], [down, *(m[1] for m in current)])
    # Three ready members of the current spec without it: desired - max_unavailable.
    assert kinds(plan(s, w, NOW)) == [("delete", old[0].name)]
    # With one of them not ready yet it waits: the down member may still be serving.
    pending = instance(current[2][0].name, age=10)
    w = world([old[0], *(m[0] for m in current[:2]), pending], [down, current[0][1], current[1][1]])
    assert plan(s, w, NOW).actions == ()


def test_an_outdated_member_that_never_joined_goes_without_pacing() -> None:
    s = spec(min=2, max=2)
    current = [ready_member(s, i) for i in range(2)]
    unjoined = [instance(ownership.instance_name("web", "bcdfg", i), age=30) for i in range(2)]
    p = plan(s, world([*(m[0] for m in current), *unjoined], [m[1] for m in current]), NOW)
    assert sorted(kinds(p)) == [("delete", m.name) for m in unjoined]


# ---------------------------------------------------------------- the short-circuit


def test_the_short_circuit_removes_no_member_that_joined_even_if_outdated() -> None:
    instances, nodes = _old_pool_down(status_age=3600)
    new = spec(count=5, max=5, image="jammy")
    for step in range(3):
        p = plan(new, world(instances, nodes), NOW + 20 * step)
        assert any("short-circuited" in n for n in p.notes)
        assert p.actions == ()


def test_the_short_circuit_still_replaces_outdated_members_that_never_joined() -> None:
    # A template that broke every VM, then fixed: the fix is the way out.
    new = spec(min=3, max=3)
    stuck = [instance(ownership.instance_name("web", "bcdfg", i), age=3600) for i in range(3)]
    p = plan(new, world(stuck), NOW)
    assert any("short-circuited" in n for n in p.notes)
    assert kinds(p) == [("launch", f"web-{new.template_hash}-0")]  # launch first
    replacement = instance(f"web-{new.template_hash}-0", age=10)
    p = plan(new, world([*stuck, replacement]), NOW)
    assert [a.kind for a in p.actions] == [ActionKind.DELETE]
    assert p.actions[0].instance in {i.name for i in stuck}


def test_max_unhealthy_percentages_round_up() -> None:
    forty = spec(max_unhealthy="40%")
    assert [max_unhealthy_for(forty, n) for n in (1, 2, 3, 5, 10)] == [1, 1, 2, 2, 4]
    assert max_unhealthy_for(spec(max_unhealthy="2"), 10) == 2
    # In a plan: 2 of 3 unhealthy is within 40% of 3 (rounded up), 3 of 3 is not.
    s = spec(min=3, max=3, max_unhealthy="40%", unhealthy_timeout="5m")

    def down_pool(down: int) -> Plan:
        pairs = [ready_member(s, i) for i in range(3)]
        nodes = [
            node(i.name, status=NodeStatus.DOWN, status_age=3600) if k < down else n
            for k, (i, n) in enumerate(pairs)
        ]
        return plan(s, world([i for i, _ in pairs], nodes), NOW)

    assert not any("short-circuited" in n for n in down_pool(2).notes)
    assert [a.kind for a in down_pool(2).actions] == [ActionKind.LAUNCH]
    assert any("3 unhealthy members exceed max_unhealthy (2)" in n for n in down_pool(3).notes)


# ---------------------------------------------------------------- a rollout to a broken spec


def test_a_rollout_whose_new_member_never_joins_stalls_after_one() -> None:
    old = spec(count=3, max=3)
    new = spec(count=3, max=3, image="jammy", join_timeout="60s")
    pairs = [ready_member(old, i) for i in range(3)]
    instances, nodes = [m[0] for m in pairs], [m[1] for m in pairs]
    launched: list[str] = []
    t = NOW
    for _ in range(120):  # 40 minutes of passes 20 s apart; launched VMs never join
        p = plan(new, world(instances, nodes), t)
        assert [a.kind for a in p.actions if a.kind is not ActionKind.LAUNCH] == []
        for a in p.actions:
            launched.append(a.instance)
            instances.append(dataclasses.replace(instance(a.instance), created_at=t))
        t += 20
    assert launched == [f"web-{new.template_hash}-0"]  # one bad instance, no churn
    assert p.stalled == launched[0]
    assert any(f"rollout stalled: {launched[0]}" in n for n in p.notes)
    assert p.counts["ready"] == 3  # the old members keep serving


def test_a_fresh_pool_with_a_member_that_never_joins_still_remediates() -> None:
    s = spec(min=3, max=4, join_timeout="60s")
    ok = [ready_member(s, i) for i in range(2)]
    stuck = instance(f"web-{s.template_hash}-2", age=61)
    p = plan(s, world([*(m[0] for m in ok), stuck], [m[1] for m in ok]), NOW)
    assert p.stalled is None
    assert kinds(p) == [("launch", f"web-{s.template_hash}-3")]


# ---------------------------------------------------------------- purges need proof


def test_a_node_is_purged_only_on_our_pool_meta_from_a_full_read() -> None:
    s = spec(min=0, max=5)
    name = f"web-{s.template_hash}-7"
    stub = dataclasses.replace(node(name, status=NodeStatus.DOWN), meta={})
    # A list entry: planned, so the controller reads the node in full first.
    assert [a.kind for a in plan(s, world([], [stub]), NOW).actions] == [ActionKind.PURGE_NODE]
    for meta in ({}, {ownership.META_POOL: "someone-else"}):
        read = dataclasses.replace(stub, meta=meta, detailed=True)
        p = plan(s, world([], [read]), NOW)
        assert p.actions == (), meta
    ours = dataclasses.replace(stub, meta={ownership.META_POOL: "web"}, detailed=True)
    assert [a.node_id for a in plan(s, world([], [ours]), NOW).actions] == [ours.id]


def test_the_controller_holds_back_a_purge_of_a_node_not_read_in_full() -> None:
    from reconciler.controller import PoolPlan, unread_targets, without_unread_targets
    from reconciler.pools import PoolVariable

    s = spec(min=0, max=5)
    stub = dataclasses.replace(node(f"web-{s.template_hash}-7", status=NodeStatus.DOWN), meta={})
    w = world([], [stub])
    p = plan(s, w, NOW)
    pp = PoolPlan(PoolVariable("web", "pools/web", {}, 1), s, p)
    assert unread_targets([pp], w) == {stub.id}
    held = without_unread_targets(pp, w)
    assert held.plan is not None and held.plan.actions == ()


# ---------------------------------------------------------------- drain deadlines


def test_a_zero_drain_deadline_never_ends_a_drain_by_itself() -> None:
    s = dataclasses.replace(spec(min=1, max=1), drain_deadline=0.0)  # the parser refuses 0
    keep = ready_member(s, 0)
    name = f"web-{s.template_hash}-1"
    draining = dataclasses.replace(
        node(name, eligible=False, draining=True, drain_by=s), drain_started_at=NOW - 1
    )
    w = world([keep[0], instance(name)], [keep[1], draining], [alloc(draining.id)])
    assert plan(s, w, NOW).actions == ()
    # A positive spec deadline does end it, counted from when the drain started.
    s60 = dataclasses.replace(s, drain_deadline=60.0)
    assert plan(s60, w, NOW + 30).actions == ()
    assert kinds(plan(s60, w, NOW + 60)) == [("delete", name)]


def test_the_counts_of_a_pool_with_a_member_of_every_kind() -> None:
    s = spec(min=1, max=10)
    old = "bbbbb"

    def on(h: str, i: int, thash: str | None = None) -> str:
        return ownership.instance_name("web", thash or s.template_hash, i, h)

    ready, outdated, outdated2 = on("host1", 0), on("host1", 1, old), on("host1", 2, old)
    protected, down, node_only = on("host1", 3), on("host1", 4), on("host1", 5)
    draining_old, lost, moved = on("host1", 6, old), on("host2", 0), on("host3", 0)
    listed = [ready, outdated, outdated2, protected, down, draining_old, lost, moved]
    leaving = node(draining_old, eligible=False, draining=True, drain_by=s, deadline_at=NOW + 600)
    nodes = [
        node(ready),
        node(outdated),
        node(outdated2),
        node(protected, meta={ownership.META_PROTECT: "true"}),
        node(down, status=NodeStatus.DOWN),
        node(node_only, status=NodeStatus.DOWN),
        leaving,
        node(lost, status=NodeStatus.DOWN),
        node(moved),
    ]
    fleet = [host("host1"), host("host2", reachable=False), host("host3", evacuate=True)]
    w = world([instance(n) for n in listed], nodes, [alloc(leaving.id)], hosts=fleet)
    assert plan(s, w, NOW).counts == {
        "pending": 0,
        "ready": 5,  # ready, both outdated, protected, moved
        "down": 2,  # down, lost
        "held": 0,
        "draining": 1,
        "drained": 0,
        "deleting": 0,
        "node-only": 1,
        "outdated": 2,  # serving ones only: not the one draining
        "unhealthy": 2,  # down and lost, both past unhealthy_timeout
        "protected": 1,
        "lost": 1,
        "displaced": 1,
        "instances": 8,  # every member but the node-only one (the lost one included)
    }


# ------------------------------------------------ what stalls a rollout, and what not


def test_a_rollout_with_a_ready_member_of_the_new_spec_does_not_stall() -> None:
    # One of the new spec is ready (the spec works), one never joined: it is replaced.
    s = spec(count=3, max=5, join_timeout="60s")
    new_ok = ready_member(s, 0)
    stuck = instance(f"web-{s.template_hash}-1", age=61)
    old = ready_member(s, 0, thash="bbbbb")
    p = plan(s, world([new_ok[0], stuck, old[0]], [new_ok[1], old[1]]), NOW)
    assert p.stalled is None
    assert not any(n.startswith("rollout stalled") for n in p.notes)
    assert kinds(p) == [("launch", f"web-{s.template_hash}-2")]


def test_a_pool_of_the_current_spec_only_never_stalls() -> None:
    # Nothing outdated joined: a member down and one that never joined remediate as usual.
    s = spec(min=1, count=2, max=5, join_timeout="60s", unhealthy_timeout="5m")
    down = node(f"web-{s.template_hash}-0", status=NodeStatus.DOWN, status_age=60)
    stuck = instance(f"web-{s.template_hash}-1", age=61)
    p = plan(s, world([instance(down.name), stuck], [down]), NOW)
    assert p.stalled is None
    assert kinds(p) == [("launch", f"web-{s.template_hash}-2")]


def test_a_member_of_the_new_spec_that_joined_then_went_down_does_not_stall_the_rollout() -> None:
    # It joined: the new spec works; its node going down later is remediated as usual.
    s = spec(min=1, count=2, max=5, unhealthy_timeout="5m")
    down = node(f"web-{s.template_hash}-0", status=NodeStatus.DOWN, status_age=400)
    old = ready_member(s, 0, thash="bbbbb")
    p = plan(s, world([instance(down.name), old[0]], [down, old[1]]), NOW)
    assert p.stalled is None
    assert [a for a in kinds(p) if a[0] == "launch"] == [("launch", f"web-{s.template_hash}-1")]


def test_a_stale_record_is_purged_on_our_pool_meta_from_a_full_read_and_named_otherwise() -> None:
    s = spec(min=1, max=3)
    n = f"web-{s.template_hash}-0"
    new = node(n, create_index=9)
    old = node(n, status=NodeStatus.DOWN, create_index=3)
    ours = dataclasses.replace(old, meta={ownership.META_POOL: "web"}, detailed=True)
    p = plan(s, world([instance(n)], [ours, new]), NOW)
    assert [(a.kind, a.instance, a.node_id, a.reason, a.host) for a in p.actions] == [
        (
            ActionKind.PURGE_NODE,
            n,
            ours.id,
            "stale node record: a newer node has the same name",
            "default",
        )
    ]
    theirs = dataclasses.replace(old, meta={}, detailed=True)  # read in full: no pool meta
    p = plan(s, world([instance(n)], [theirs, new]), NOW)
    assert p.actions == ()
    assert p.notes == (
        f"node {n} ({theirs.id}) is not purged: its meta carries no multipass-reconciler.pool=web",
    )


def test_the_node_of_a_gone_vm_is_purged_when_down_or_drained_by_us_only() -> None:
    s = spec(min=0, max=3)
    n = f"web-{s.template_hash}-0"
    # Ineligible by someone else, still ready: not ours to purge.
    cordoned = node(n, eligible=False)
    assert plan(s, world([], [cordoned]), NOW).actions == ()
    drained = node(n, eligible=False, drain_by=s, last_drain_status="complete")
    assert [(a.kind, a.reason) for a in plan(s, world([], [drained]), NOW).actions] == [
        (ActionKind.PURGE_NODE, "instance gone, node ready")
    ]
