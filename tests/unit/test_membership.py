"""Who the pool's members are (plan.join, seen through plan): in-flight launches, hosts,
and what an instance missing from the lists means.

A launch under way is a member (counted, its name and host taken); no other in-flight
action, and no other pool's launch, makes one. A member is where the daemon that lists
it is; one that is not listed is gone only if its host was read.
"""

from __future__ import annotations

from reconciler import ownership
from reconciler.model import NodeStatus
from reconciler.plan import Phase, join, plan
from tests.worlds import NOW, host, instance, node, ready_member, spec, world

OLD = "bbbbb"


def test_only_our_launches_in_flight_become_members_whatever_else_is_in_flight() -> None:
    s = spec(min=1, max=5)
    ours = ownership.instance_name("web", s.template_hash, 0)
    inflight = [
        ("launch", ownership.instance_name("api", s.template_hash, 0)),  # sorts first
        ("delete", ownership.instance_name("web", s.template_hash, 7)),  # gone already
        ("drain", ownership.instance_name("web", s.template_hash, 8)),
        ("launch", ours),
    ]
    p = plan(s, world(), NOW, inflight=inflight)
    assert [(m.name, m.phase) for m in p.members] == [(ours, Phase.PENDING)]
    assert p.actions == ()
    assert (p.counts["pending"], p.counts["protected"], p.counts["outdated"]) == (1, 0, 0)


def test_a_launch_in_flight_of_an_older_spec_is_outdated() -> None:
    s = spec(min=1, max=5)
    old = ownership.instance_name("web", OLD, 0)
    p = plan(s, world(), NOW, inflight=[("launch", old)])
    [m] = p.members
    assert (m.name, m.template_hash, m.ordinal, m.outdated) == (old, OLD, 0, True)
    assert p.counts["outdated"] == 1


def test_a_launch_in_flight_counts_on_the_host_its_name_says() -> None:
    s = spec(min=2, max=5)
    fleet = [host("host1"), host("host2")]
    going = ownership.instance_name("web", s.template_hash, 0, "host1")
    p = plan(s, world(hosts=fleet), NOW, inflight=[("launch", going)])
    assert [m.host for m in p.members] == ["host1"]
    assert [(a.instance, a.host) for a in p.actions] == [
        (ownership.instance_name("web", s.template_hash, 0, "host2"), "host2")
    ]


def test_a_member_is_where_the_daemon_that_lists_it_is() -> None:
    s = spec(min=0, max=5)
    # A name without a host part (from before hosts), listed by host1's daemon.
    name = ownership.instance_name("web", s.template_hash, 0)
    w = world([instance(name, host="host1")], [node(name)], hosts=[host("host1")])
    members, _ = join(s, w, NOW)
    assert [m.host for m in members] == ["host1"]
    # Scaling it in goes to that daemon.
    [drain] = plan(s, w, NOW).actions
    assert (drain.kind.value, drain.host) == ("drain", "host1")


def test_an_unlisted_instance_on_a_host_that_was_read_is_gone_though_another_host_was_not() -> None:
    s = spec(min=1, max=5)
    keep = ready_member(s, 0, host="host1")
    gone = ownership.instance_name("web", s.template_hash, 1, "host1")
    down = node(gone, status=NodeStatus.DOWN)
    fleet = [host("host1"), host("host2", reachable=False)]
    p = plan(s, world([keep[0]], [keep[1], down], hosts=fleet), NOW)
    assert {m.name: m.phase for m in p.members}[gone] is Phase.NODE_ONLY
    assert [(a.kind.value, a.instance, a.reason) for a in p.actions] == [
        ("purge-node", gone, "instance gone, node down")
    ]


def test_a_member_whose_delete_is_in_flight_is_deleting_and_replaced() -> None:
    s = spec(min=1, max=5)
    going = ownership.instance_name("web", s.template_hash, 0)
    p = plan(s, world([instance(going, age=60)], []), NOW, inflight=[("delete", going)])
    assert [(m.name, m.phase) for m in p.members] == [(going, Phase.DELETING)]
    assert [(a.kind.value, a.instance, a.reason) for a in p.actions] == [
        ("launch", ownership.instance_name("web", s.template_hash, 1), "scale up: 0 of 1 member")
    ]
