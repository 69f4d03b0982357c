"""Which members a shrinking pool drains first, per ``scale_in`` strategy, through ``plan``.

``least_busy`` ranks by the allocated share of each node, CPU and memory averaged;
``empty`` takes only members with no live allocation, ``empty_ignore_system`` only
those with none besides system jobs. The drain says how many allocations it moves.
"""

from __future__ import annotations

import dataclasses

import pytest

from reconciler import ownership
from reconciler.model import Allocation, Instance, Node
from reconciler.plan import Plan, join, plan
from reconciler.spec import PoolSpec
from tests.worlds import NOW, alloc, host, instance, node, ready_member, spec, world


def drained(p: Plan) -> list[str]:
    return [a.instance for a in p.actions if a.kind.value == "drain"]


def sized(n: Node, cpu_mhz: int, memory_mb: int) -> Node:
    return dataclasses.replace(n, cpu_mhz=cpu_mhz, memory_mb=memory_mb)


def shrink_by_one(
    strategy: str, nodes: list[Node], allocs: list[Allocation]
) -> tuple[PoolSpec, list[tuple[Instance, Node]], Plan]:
    """Plan a pool of len(nodes) ready members down by one (``nodes`` replace theirs)."""
    s = spec(min=len(nodes) - 1, max=5, scale_in=strategy)
    members = [ready_member(s, i) for i in range(len(nodes))]
    return s, members, plan(s, world([m[0] for m in members], nodes, allocs), NOW)


def test_least_busy_is_the_share_of_the_node_not_the_absolute_use() -> None:
    s = spec()
    small = ready_member(s, 0)[1]  # 4000 MHz, 2048 MB
    big = sized(ready_member(s, 1)[1], 16000, 16384)
    allocs = [
        # Half of the small node in both dimensions ...
        alloc(small.id, 0, cpu=1000, mem=512),
        alloc(small.id, 1, cpu=1000, mem=512),
        # ... more MHz and MB in all, but an eighth of the big one.
        alloc(big.id, 0, cpu=1000, mem=1024),
        alloc(big.id, 1, cpu=1000, mem=1024),
    ]
    _, members, p = shrink_by_one("least_busy", [small, big], allocs)
    assert drained(p) == [members[1][0].name]


@pytest.mark.parametrize(
    ("busy", "lighter"),
    [
        # Share of CPU, share of memory: (0.75, 0.125) vs (0.125, 0.5).
        ((3000, 256), (500, 1024)),
        # The mirror: (0.125, 0.75) vs (0.5, 0.125).
        ((500, 1536), (2000, 256)),
    ],
)
def test_least_busy_averages_cpu_and_memory(
    busy: tuple[int, int], lighter: tuple[int, int]
) -> None:
    s = spec()
    n0, n1 = ready_member(s, 0)[1], ready_member(s, 1)[1]
    allocs = [
        alloc(n0.id, 0, cpu=busy[0], mem=busy[1]),
        alloc(n1.id, 0, cpu=lighter[0], mem=lighter[1]),
    ]
    _, members, p = shrink_by_one("least_busy", [n0, n1], allocs)
    assert drained(p) == [members[1][0].name]


def test_least_busy_drains_an_empty_member_before_a_busy_one() -> None:
    s = spec()
    n0, n1 = ready_member(s, 0)[1], ready_member(s, 1)[1]
    _, members, p = shrink_by_one("least_busy", [n0, n1], [alloc(n0.id, 0, cpu=100, mem=64)])
    assert drained(p) == [members[1][0].name]


@pytest.mark.parametrize(
    ("unreported", "its_alloc", "other_alloc"),
    [
        # No CPU figure: its memory share (0.5) alone against (0.5 + 0.25) / 2.
        ({"cpu_mhz": 0}, (500, 1024), (2000, 512)),
        # No memory figure: its CPU share (0.5) alone against (0.125 + 0.625) / 2.
        ({"memory_mb": 0}, (2000, 500), (500, 1280)),
    ],
)
def test_a_node_that_reports_no_capacity_in_one_dimension_is_ranked_by_the_other(
    unreported: dict[str, int], its_alloc: tuple[int, int], other_alloc: tuple[int, int]
) -> None:
    s = spec()
    n0 = ready_member(s, 0)[1]
    n1 = dataclasses.replace(ready_member(s, 1)[1], **unreported)  # type: ignore[arg-type]
    allocs = [
        alloc(n0.id, 0, cpu=other_alloc[0], mem=other_alloc[1]),
        alloc(n1.id, 0, cpu=its_alloc[0], mem=its_alloc[1]),
    ]
    _, members, p = shrink_by_one("least_busy", [n0, n1], allocs)
    assert drained(p) == [members[1][0].name]


def test_the_drain_counts_the_allocations_it_moves() -> None:
    s = spec()
    n0, n1 = ready_member(s, 0)[1], ready_member(s, 1)[1]
    allocs = [alloc(n0.id, i, cpu=1000, mem=512) for i in range(4)]
    allocs += [alloc(n1.id, i, cpu=10, mem=10) for i in range(3)]
    _, members, p = shrink_by_one("least_busy", [n0, n1], allocs)
    # `reconciler plan` shows it: "..., 3 allocations, deadline 1h".
    [drain] = p.actions
    assert (drain.instance, drain.allocations) == (members[1][0].name, 3)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # Member 0 runs a service and a system job, member 1 only a system job.
        ("empty_ignore_system", [1]),
        ("empty", []),
    ],
)
def test_empty_strategies_take_only_members_without_the_allocations_they_count(
    strategy: str, expected: list[int]
) -> None:
    s = spec()
    n0, n1 = ready_member(s, 0)[1], ready_member(s, 1)[1]
    allocs = [
        alloc(n0.id, 0, job_type="service"),
        alloc(n0.id, 1, job_type="system"),
        alloc(n1.id, 0, job_type="system"),
    ]
    _, members, p = shrink_by_one(strategy, [n0, n1], allocs)
    assert drained(p) == [members[i][0].name for i in expected]


def test_empty_ignore_system_leaves_a_member_with_only_services() -> None:
    s = spec()
    n0, n1 = ready_member(s, 0)[1], ready_member(s, 1)[1]
    allocs = [alloc(n0.id, 0, job_type="system"), alloc(n1.id, 0, job_type="batch")]
    _, members, p = shrink_by_one("empty_ignore_system", [n0, n1], allocs)
    assert drained(p) == [members[0][0].name]


def test_join_reports_each_members_allocations_and_load() -> None:
    s = spec()
    inst, n = ready_member(s, 0)  # 4000 MHz, 2048 MB
    allocs = [
        alloc(n.id, 0, job_type="service", cpu=500, mem=256),
        alloc(n.id, 1, job_type="system", cpu=300, mem=128),
        alloc(n.id, 2, job_type="batch", cpu=200, mem=512),
    ]
    [m], _ = join(s, world([inst], [n], allocs), NOW)
    assert (m.live_allocations, m.non_system_allocations) == (3, 2)
    # (1000 / 4000 + 896 / 2048) / 2
    assert m.load == 0.34375


@pytest.mark.parametrize("size", [3, 17])  # shrinking by 1 of 3, and by 2 of 17
@pytest.mark.parametrize("strategy", ["least_busy", "newest", "oldest"])
def test_each_strategy_picks_its_member_whatever_the_pool_size(strategy: str, size: int) -> None:
    s = spec(min=size - (1 if size == 3 else 2), max=20, scale_in=strategy)
    names = [ownership.instance_name("web", s.template_hash, i) for i in range(size)]
    # The members the strategy must pick have the highest ordinals (the name never decides):
    # the last ones are idle, and the youngest or the oldest.
    picked = names[-1:] if size == 3 else names[-2:]
    ages = {n: 3600.0 for n in names}
    if strategy == "newest":
        ages.update({n: 60.0 + k for k, n in enumerate(reversed(picked))})
    if strategy == "oldest":
        ages.update({n: 90000.0 - k for k, n in enumerate(reversed(picked))})
    nodes = [node(n) for n in names]
    busy = [alloc(nd.id, 0, cpu=1000, mem=512) for nd in nodes if nd.name not in picked]
    observed = world([instance(n, age=ages[n]) for n in names], nodes, busy)
    p = plan(s, observed, NOW)
    assert sorted(drained(p)) == sorted(picked)


def test_finished_or_stopping_allocations_do_not_count() -> None:
    s = spec()
    n0, n1 = ready_member(s, 0)[1], ready_member(s, 1)[1]
    allocs = [
        dataclasses.replace(alloc(n0.id, 0), client_status="complete"),
        dataclasses.replace(alloc(n0.id, 1), desired_status="stop"),
        alloc(n1.id, 0),
    ]
    _, members, p = shrink_by_one("empty", [n0, n1], allocs)
    [drain] = p.actions
    assert (drain.instance, drain.allocations) == (members[0][0].name, 0)


def test_least_busy_orders_a_pool_over_several_hosts_too() -> None:
    s = spec(min=3, max=5)
    names = [
        ownership.instance_name("web", s.template_hash, i, h)
        for h in ("host1", "host2")
        for i in (0, 1)
    ]
    nodes = [node(n) for n in names]
    idle = names[-1]  # host2's second: the last by name, and the only idle one
    busy = [alloc(nd.id, 0) for nd in nodes if nd.name != idle]
    w = world([instance(n) for n in names], nodes, busy, hosts=[host("host1"), host("host2")])
    assert drained(plan(s, w, NOW)) == [idle]
