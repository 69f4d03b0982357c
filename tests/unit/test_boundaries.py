"""Boundaries of the planner that a user depends on, each through ``plan(...)``.

* two Nomad nodes with one name: the newest is the member's node, the older is stale;
* the earliest failure counts: a VM that stopped before its node went down;
* max_unhealthy of a pool below desired is sized on max(serving, desired);
* percentages that do not divide round as documented (surge up, unavailable down),
  and a rollout never has one more ready member missing than allowed;
* the VM ceiling while members drain: never more than ``max`` instances, nor more
  than desired + surge during a replacement.
"""

from __future__ import annotations

import dataclasses

from reconciler import ownership
from reconciler.model import Instance, InstanceState, Node, NodeStatus, Observed
from reconciler.plan import ActionKind, Phase, Plan, drain_meta, plan
from reconciler.spec import PoolSpec
from tests.worlds import NOW, alloc, host, instance, node, ready_member, spec, world


def kinds(p: Plan) -> list[tuple[str, str]]:
    return [(a.kind.value, a.instance) for a in p.actions]


def name(s: PoolSpec, ordinal: int, thash: str | None = None) -> str:
    return ownership.instance_name(s.pool, thash or s.template_hash, ordinal)


OLD_HASH = "bbbbb"  # a template hash of an earlier spec (valid alphabet, not the current one)


# ---------------------------------------------------------------- two nodes, one name


def _re_registered(s: PoolSpec, *, old_first: bool) -> Observed:
    """A VM whose node re-registered: an old record, down for an hour, and a new ready one."""
    n = name(s, 0)
    old = node(n, status=NodeStatus.DOWN, status_age=3600.0, create_index=3)
    new = node(n, create_index=9)
    nodes = [old, new] if old_first else [new, old]
    return world([instance(n)], nodes)


def test_the_newest_of_two_nodes_with_one_name_is_the_members_node() -> None:
    s = spec(min=1, max=3)
    for old_first in (True, False):  # whatever order Nomad lists them in
        p = plan(s, _re_registered(s, old_first=old_first), NOW)
        [m] = p.members
        assert m.node is not None and m.node.create_index == 9
        assert m.phase is Phase.READY
        assert m.unhealthy is None  # never judged by its dead old record
        # The old record is purged; the healthy VM is neither drained nor deleted.
        assert [(a.kind, a.node_id) for a in p.actions] == [
            (ActionKind.PURGE_NODE, f"id-{name(s, 0)}-3")
        ]
        assert "stale node record" in p.actions[0].reason


def test_a_stale_record_is_left_alone_when_node_purge_is_off() -> None:
    s = spec(min=1, max=3, node_purge=False)
    p = plan(s, _re_registered(s, old_first=True), NOW)
    assert p.actions == ()
    assert p.members[0].phase is Phase.READY


# ---------------------------------------------------------------- the earliest failure


def _stopped_then_down(s: PoolSpec, *, stopped_for: float, down_for: float) -> Observed:
    n = name(s, 0)
    inst = dataclasses.replace(
        instance(n, state=InstanceState.STOPPED), broken_since=NOW - stopped_for
    )
    return world([inst], [node(n, status=NodeStatus.DOWN, status_age=down_for)])


def test_a_vm_that_stopped_before_its_node_went_down_is_unhealthy_from_the_stop() -> None:
    s = spec(min=1, max=3, unhealthy_timeout="5m")
    # Stopped 6 minutes ago; Nomad marked the node down only 2 minutes ago.
    p = plan(s, _stopped_then_down(s, stopped_for=360, down_for=120), NOW)
    [m] = [m for m in p.members if m.name == name(s, 0)]
    assert m.unhealthy == "node down for over 5m"
    assert ("launch", name(s, 1)) in kinds(p)  # its replacement


def test_a_node_that_went_down_before_the_vm_stopped_is_unhealthy_from_the_down() -> None:
    s = spec(min=1, max=3, unhealthy_timeout="5m")
    p = plan(s, _stopped_then_down(s, stopped_for=120, down_for=360), NOW)
    [m] = [m for m in p.members if m.name == name(s, 0)]
    assert m.unhealthy == "node down for over 5m"


def test_neither_failure_old_enough_is_not_unhealthy_yet() -> None:
    s = spec(min=1, max=3, unhealthy_timeout="5m")
    p = plan(s, _stopped_then_down(s, stopped_for=290, down_for=120), NOW)
    [m] = p.members
    assert m.phase is Phase.DOWN and m.unhealthy is None
    assert p.actions == ()


def test_a_stopped_vm_whose_node_still_answers_is_unhealthy_after_the_timeout() -> None:
    s = spec(min=1, max=3, unhealthy_timeout="5m")
    n = name(s, 0)
    for stopped_for, unhealthy in ((299, False), (301, True)):
        inst = dataclasses.replace(
            instance(n, state=InstanceState.STOPPED), broken_since=NOW - stopped_for
        )
        [m, *_] = plan(s, world([inst], [node(n)]), NOW).members
        assert (m.unhealthy is not None) is unhealthy, stopped_for


# ---------------------------------------------------------------- max_unhealthy below desired


def _unhealthy_pool(s: PoolSpec, unhealthy: int, healthy: int = 0) -> Observed:
    instances: list[Instance] = []
    nodes: list[Node] = []
    for i in range(unhealthy + healthy):
        n = name(s, i)
        instances.append(instance(n))
        status = NodeStatus.DOWN if i < unhealthy else NodeStatus.READY
        nodes.append(node(n, status=status, status_age=3600.0))
    return world(instances, nodes)


def test_max_unhealthy_of_a_pool_below_desired_is_sized_on_desired() -> None:
    # desired 5, two serving and both unhealthy, 40%: 40% of 5 rounds up to 2, so 2
    # unhealthy is within the limit (40% of the 2 serving would be 1: short-circuited).
    s = spec(min=5, max=8, max_unhealthy="40%")
    p = plan(s, _unhealthy_pool(s, unhealthy=2), NOW)
    assert p.short_circuit is None
    assert not any("short-circuited" in note for note in p.notes)
    assert p.counts["unhealthy"] == 2
    # Remediation goes ahead: replacements for both, on top of the 3 missing members.
    launches = [a for a in p.actions if a.kind is ActionKind.LAUNCH]
    assert len(launches) == 5 + 1 - 2  # up to desired + surge VMs at once


def test_max_unhealthy_sized_on_the_members_when_they_outnumber_desired() -> None:
    # desired 2 but 5 serving, 3 of them unhealthy: 40% of 5 is 2 < 3, short-circuited
    # (sized on desired, 40% of 2 would be 1: the same); 2 unhealthy of 5 is not.
    s = spec(min=2, max=8, max_unhealthy="40%")
    assert plan(s, _unhealthy_pool(s, unhealthy=3, healthy=2), NOW).short_circuit is not None
    assert plan(s, _unhealthy_pool(s, unhealthy=2, healthy=3), NOW).short_circuit is None


def test_above_max_unhealthy_nothing_that_joined_is_removed() -> None:
    s = spec(min=5, max=8, max_unhealthy="40%")
    p = plan(s, _unhealthy_pool(s, unhealthy=3), NOW)  # 3 > 2 of 5
    assert p.short_circuit is not None and "3 unhealthy" in p.short_circuit
    assert not [a for a in p.actions if a.kind in (ActionKind.DRAIN, ActionKind.DELETE)]


def test_remediation_removes_the_unhealthy_once_their_replacements_serve() -> None:
    s = spec(min=2, max=8, max_unhealthy="40%")
    # 2 ready replacements already serve beside the 2 unhealthy (4 serving, desired 2).
    p = plan(s, _unhealthy_pool(s, unhealthy=2, healthy=2), NOW)
    assert p.short_circuit is None
    # Down nodes have nothing to migrate: deleted, not drained.
    assert sorted(kinds(p)) == [("delete", name(s, 0)), ("delete", name(s, 1))]


# ---------------------------------------------------------------- percentages that do not divide


def _outdated_pool(s: PoolSpec, n: int) -> Observed:
    instances, nodes = [], []
    for i in range(n):
        inst, nd = ready_member(s, i, thash=OLD_HASH)
        instances.append(inst)
        nodes.append(nd)
    return world(instances, nodes)


def test_25_percent_of_3_surges_one_and_leaves_none_unavailable() -> None:
    # max_surge rounds up (0.75 -> 1), max_unavailable rounds down (0.75 -> 0).
    s = spec(min=3, max=5, max_surge="25%", max_unavailable="25%")
    p = plan(s, _outdated_pool(s, 3), NOW)
    assert kinds(p) == [("launch", name(s, 0))]  # one at a time, nothing drained first


def test_25_percent_of_7_surges_two_and_drains_one() -> None:
    # 1.75: surge rounds up to 2, unavailable down to 1.
    s = spec(min=7, max=10, max_surge="25%", max_unavailable="25%")
    p = plan(s, _outdated_pool(s, 7), NOW)
    launches = [a for a in p.actions if a.kind is ActionKind.LAUNCH]
    drains = [a for a in p.actions if a.kind is ActionKind.DRAIN]
    assert len(launches) == 2
    assert len(drains) == 1


def test_50_percent_of_3_drains_one_never_two() -> None:
    s = spec(min=3, max=6, max_surge="0", max_unavailable="50%")  # 1.5 -> 1
    p = plan(s, _outdated_pool(s, 3), NOW)
    assert [a.kind for a in p.actions] == [ActionKind.DRAIN]


def _step(s: PoolSpec, observed: Observed, p: Plan) -> Observed:
    """The world after ``p`` ran and settled: launches joined, drains done, deletes gone."""
    instances = {i.name: i for i in observed.instances}
    nodes = {n.name: n for n in observed.nodes}
    for a in p.actions:
        if a.kind is ActionKind.LAUNCH:
            inst, nd = ready_member(s, ownership.parse_instance_name(a.instance)[2])  # type: ignore[index]
            instances[a.instance], nodes[a.instance] = inst, nd
        elif a.kind is ActionKind.DRAIN:
            nodes[a.instance] = dataclasses.replace(
                nodes[a.instance], draining=True, eligible=False, drain_meta=_drain_meta(s)
            )
        elif a.kind is ActionKind.DELETE:
            instances.pop(a.instance, None)
            nodes.pop(a.instance, None)
    return world(list(instances.values()), list(nodes.values()))


def _drain_meta(s: PoolSpec) -> dict[str, str]:
    return drain_meta(s, "outdated")


def _rollout(s: PoolSpec, n: int, desired: int, surge: int, unavailable: int) -> int:
    """Roll ``n`` outdated members to the current spec; check every pass; return passes."""
    observed = _outdated_pool(s, n)
    for passes in range(1, 50):
        p = plan(s, observed, NOW)
        ready = sum(1 for m in p.members if m.phase is Phase.READY)
        drains = sum(1 for a in p.actions if a.kind is ActionKind.DRAIN)
        # What the plan leaves ready once its drains start never dips below the floor.
        assert ready - drains >= desired - unavailable, (passes, ready, drains)
        vms = len(p.members) + sum(1 for a in p.actions if a.kind is ActionKind.LAUNCH)
        assert vms <= s.max, (passes, vms)
        replacing = any(m.outdated and m.phase is Phase.READY for m in p.members)
        if replacing:  # outdated members still serve: the rollout's own ceiling holds
            assert vms <= desired + surge, (passes, vms)
        if not p.actions:
            assert all(not m.outdated for m in p.members)
            return passes
        observed = _step(s, observed, p)
    raise AssertionError("the rollout did not finish")


def test_a_rollout_at_percentages_that_do_not_divide_stays_within_its_budget() -> None:
    for desired, surge_pct, unavailable_pct, surge, unavailable in (
        (3, "25%", "25%", 1, 0),
        (7, "25%", "25%", 2, 1),
        (3, "0", "50%", 0, 1),
        (5, "30%", "30%", 2, 1),
    ):
        s = spec(min=desired, max=desired + 3, max_surge=surge_pct, max_unavailable=unavailable_pct)
        assert _rollout(s, desired, desired, surge, unavailable) > 1


# ---------------------------------------------------------------- the VM ceiling while draining


def _draining_pool(s: PoolSpec, ready: int, draining: int) -> Observed:
    """``ready`` current members serving, ``draining`` more still busy under our drain."""

    instances, nodes, allocations = [], [], []
    for i in range(ready + draining):
        inst, nd = ready_member(s, i)
        if i >= ready:
            nd = dataclasses.replace(
                nd, draining=True, eligible=False, drain_meta=_drain_meta(s), drain_deadline_at=None
            )
            allocations.append(alloc(nd.id, i))  # still migrating work: not drained yet
        instances.append(inst)
        nodes.append(nd)
    return Observed(tuple(instances), tuple(nodes), tuple(allocations), at=NOW)


def test_scaling_up_while_members_drain_never_exceeds_max_instances() -> None:
    # max 5: 2 serving, 3 still draining (a scale-in under way), then count goes to 5.
    s = spec(min=0, max=5, count=5)
    p = plan(s, _draining_pool(s, ready=2, draining=3), NOW)
    assert p.counts["draining"] == 3
    assert [a for a in p.actions if a.kind is ActionKind.LAUNCH] == []  # 5 VMs exist already
    # As the drains finish and their VMs are deleted, room opens one for one.
    p = plan(s, _draining_pool(s, ready=2, draining=2), NOW)
    assert len([a for a in p.actions if a.kind is ActionKind.LAUNCH]) == 1


def test_deleting_members_count_toward_the_ceiling_too() -> None:
    s = spec(min=0, max=4, count=4)
    observed = _draining_pool(s, ready=2, draining=0)
    gone = [dataclasses.replace(instance(name(s, i)), state=InstanceState.DELETED) for i in (2, 3)]
    observed = dataclasses.replace(observed, instances=observed.instances + tuple(gone))
    p = plan(s, observed, NOW)
    assert p.counts["deleting"] == 2
    assert not [a for a in p.actions if a.kind is ActionKind.LAUNCH]  # 4 VMs on the host


def test_a_replacement_while_members_drain_stays_within_desired_plus_surge() -> None:
    # desired 3, surge 1: 3 outdated serving, one replacement launched and ready, one
    # outdated member still draining. 3 + 1 + 1 = 5 VMs exist > desired + surge = 4.
    s = spec(min=3, max=10, max_surge=1, max_unavailable=0)
    instances, nodes = [], []
    for i in range(4):
        inst, nd = ready_member(s, i, thash=OLD_HASH)
        if i == 3:
            nd = dataclasses.replace(nd, draining=True, eligible=False, drain_meta=_drain_meta(s))
        instances.append(inst)
        nodes.append(nd)
    inst, nd = ready_member(s, 0)
    observed = world([*instances, inst], [*nodes, nd])
    # The draining member's allocations are still migrating.
    observed = dataclasses.replace(observed, allocations=(alloc(nodes[3].id, 0),))
    p = plan(s, observed, NOW)
    assert p.counts["draining"] == 1
    launches = [a for a in p.actions if a.kind is ActionKind.LAUNCH]
    assert launches == []  # a second replacement would make 6 VMs
    assert len(p.members) <= 3 + 1 + 1


# ------------------------------------------------ drain deadlines and timeouts, to the second


def _draining(s: PoolSpec, **fields: object) -> Observed:
    """One ready member to keep and one whose node our drain has left holding an allocation."""
    keep = ready_member(s, 0)
    n = name(s, 1)
    nd = dataclasses.replace(
        node(n, eligible=False, draining=True, drain_by=s),
        **fields,  # type: ignore[arg-type]
    )
    return world([keep[0], instance(n)], [keep[1], nd], [alloc(nd.id)])


def test_a_drain_ends_at_its_nomad_deadline_to_the_second() -> None:
    s = spec(min=1, max=5)
    w = _draining(s, drain_deadline_at=NOW + 60)
    assert kinds(plan(s, w, NOW + 59.5)) == []
    assert kinds(plan(s, w, NOW + 60)) == [("delete", name(s, 1))]


def test_a_one_second_spec_deadline_ends_a_drain_nomad_gave_no_deadline() -> None:
    s = spec(min=1, max=5, drain_deadline="1s")
    w = _draining(s, drain_deadline_at=None, drain_started_at=NOW - 5)
    assert kinds(plan(s, w, NOW)) == [("delete", name(s, 1))]


def test_a_node_down_for_exactly_unhealthy_timeout_is_not_yet_unhealthy() -> None:
    s = spec(min=1, max=5, unhealthy_timeout="5m")
    i, _ = ready_member(s, 0)
    down = node(i.name, status=NodeStatus.DOWN, status_age=300.0)
    p = plan(s, world([i], [down]), NOW)
    assert [m.unhealthy for m in p.members] == [None]
    p = plan(s, world([i], [down]), NOW + 0.5)
    assert [m.unhealthy for m in p.members] == ["node down for over 5m"]


def test_a_down_node_without_a_status_time_is_counted_from_now() -> None:
    s = spec(min=1, max=5)
    i, _ = ready_member(s, 0)
    down = dataclasses.replace(node(i.name, status=NodeStatus.DOWN), status_updated_at=None)
    p = plan(s, world([i], [down]), NOW)
    assert [(m.phase, m.unhealthy) for m in p.members] == [(Phase.DOWN, None)]


def test_a_node_initializing_for_exactly_join_timeout_has_not_failed_to_join() -> None:
    s = spec(min=1, max=5, join_timeout="10m")
    n = name(s, 0)
    vm = instance(n, age=600.0)
    joining = node(n, status=NodeStatus.INITIALIZING, status_age=600.0)
    p = plan(s, world([vm], [joining]), NOW)
    assert [m.unhealthy for m in p.members] == [None]
    p = plan(s, world([vm], [joining]), NOW + 0.5)
    assert [m.unhealthy for m in p.members] == ["node not ready within 10m"]


def test_an_initializing_node_on_a_host_that_cannot_be_read_waits_unjudged() -> None:
    """Without its VM's creation time there is nothing to time the join from."""
    s = spec(min=1, max=5, join_timeout="10m")
    n = ownership.instance_name(s.pool, s.template_hash, 0, "host2")
    joining = node(n, status=NodeStatus.INITIALIZING, status_age=7200.0)
    w = world([instance(n)], [joining], hosts=[host("host2", reachable=False)])
    p = plan(s, w, NOW)
    assert [(m.phase, m.unhealthy, m.frozen) for m in p.members] == [(Phase.PENDING, None, True)]
    assert p.actions == () and p.waiting_on_hosts == ("host2",)


def test_a_vm_that_never_joined_for_exactly_join_timeout_is_not_yet_unhealthy() -> None:
    s = spec(min=1, max=5, join_timeout="10m")
    vm = instance(name(s, 0), age=600.0)  # no node at all
    p = plan(s, world([vm], []), NOW)
    assert [(m.phase, m.unhealthy) for m in p.members] == [(Phase.PENDING, None)]
    p = plan(s, world([vm], []), NOW + 0.5)
    assert [m.unhealthy for m in p.members] == ["did not join Nomad within 10m"]


def test_a_vm_without_a_creation_time_that_has_not_joined_is_not_judged() -> None:
    s = spec(min=1, max=5)
    vm = dataclasses.replace(instance(name(s, 0)), created_at=None)
    p = plan(s, world([vm], []), NOW)
    assert [(m.phase, m.unhealthy) for m in p.members] == [(Phase.PENDING, None)]
    assert p.actions == ()


def test_a_vm_stopped_for_exactly_unhealthy_timeout_is_not_yet_unhealthy() -> None:
    s = spec(min=1, max=5, unhealthy_timeout="5m")
    i, n = ready_member(s, 0)
    stopped = dataclasses.replace(i, state=InstanceState.STOPPED, broken_since=NOW - 300.0)
    p = plan(s, world([stopped], [n]), NOW)
    assert [(m.phase, m.unhealthy) for m in p.members] == [(Phase.READY, None)]
    p = plan(s, world([stopped], [n]), NOW + 0.5)
    assert [m.unhealthy for m in p.members] == ["instance STOPPED for over 5m"]


def test_a_stopped_vm_first_seen_now_is_counted_from_now() -> None:
    s = spec(min=1, max=5)
    i, n = ready_member(s, 0)
    stopped = dataclasses.replace(i, state=InstanceState.STOPPED, broken_since=None)
    p = plan(s, world([stopped], [n]), NOW)
    assert [(m.phase, m.unhealthy) for m in p.members] == [(Phase.READY, None)]


def test_a_surge_launches_one_replacement_per_member_to_replace_not_the_whole_surge() -> None:
    # desired 3, surge 2, one outdated member among three: one replacement, not two.
    s = spec(min=3, max=10, max_surge=2, max_unavailable=0)
    old, nold = ready_member(s, 0, thash=OLD_HASH)
    current = [ready_member(s, i) for i in (1, 2)]
    observed = world([old, *(i for i, _ in current)], [nold, *(n for _, n in current)])
    p = plan(s, observed, NOW)
    assert [(a.kind, a.instance) for a in p.actions if a.kind is ActionKind.LAUNCH] == [
        (ActionKind.LAUNCH, name(s, 0))
    ]


def test_above_max_unhealthy_a_pool_above_desired_is_not_scaled_in_either() -> None:
    # desired 2, 3 unhealthy (down) and 3 ready: the cause may be hiding members, so
    # none of the ready ones is drained to scale in while remediation is short-circuited.
    s = spec(min=2, max=8, max_unhealthy=1)
    p = plan(s, _unhealthy_pool(s, unhealthy=3, healthy=3), NOW)
    assert p.short_circuit is not None
    assert p.actions == ()


def test_a_scale_in_removes_the_excess_and_no_more_when_unavailable_allows_more() -> None:
    s = spec(min=1, max=5, max_unavailable=2)
    members = [ready_member(s, i) for i in range(3)]
    p = plan(s, world([m[0] for m in members], [m[1] for m in members]), NOW)
    assert [a.kind for a in p.actions] == [ActionKind.DRAIN, ActionKind.DRAIN]


def test_an_outdated_member_and_the_excess_go_in_one_pass() -> None:
    # desired 1: the outdated member is replaced by a current one already serving, and
    # of the two current ones, the excess is scaled in at the same time.
    s = spec(min=1, max=5)
    old = ready_member(s, 0, thash=OLD_HASH)
    current = [ready_member(s, i) for i in (1, 2)]
    observed = world([old[0], *(i for i, _ in current)], [old[1], *(n for _, n in current)])
    p = plan(s, observed, NOW)
    assert sorted(kinds(p)) == [("drain", name(s, 1)), ("drain", name(s, 0, OLD_HASH))]


def test_while_an_unhealthy_member_waits_for_its_replacement_no_healthy_one_is_drained() -> None:
    # desired 2: one ready, one down past the timeout. Its replacement is launched first;
    # the pool is not above desired, so the ready member stays, however loose the budget.
    s = spec(min=2, max=5, max_unavailable=2, unhealthy_timeout="5m")
    ready = ready_member(s, 0)
    down = node(name(s, 1), status=NodeStatus.DOWN, status_age=400)
    p = plan(s, world([ready[0], instance(name(s, 1))], [ready[1], down]), NOW)
    assert kinds(p) == [("launch", name(s, 2))]
