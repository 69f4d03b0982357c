"""The planner on hand-built worlds: one behaviour per test."""

from __future__ import annotations

import dataclasses

from reconciler import ownership
from reconciler.model import InstanceState, NodeStatus
from reconciler.plan import ActionKind, Phase, plan
from tests.worlds import NOW, alloc, instance, node, ready_member, spec, world


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
    assert p.counts["ready"] == 2


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
