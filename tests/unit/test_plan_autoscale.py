"""plan(...) of a pool with a policy: what of the world the policy is judged on.

Only the pool's ready members' nodes offer and hold capacity; the baseline is
the serving members; blocked work counts when it could run on this pool's nodes
(its node pool, class and datacenter), sized on the spec's instance when no node
of the pool is ready yet.
"""

from __future__ import annotations

import dataclasses

from reconciler.model import Allocation, BlockedAsk, Observed
from reconciler.plan import Phase, drain_meta, plan
from reconciler.spec import PoolSpec
from tests.worlds import NOW, instance, ready_member, spec, world

BLOCKED_POLICY = "checks: [{name: unplaced, metric: blocked_evaluations}]"
MEMORY_POLICY = (
    "checks: [{name: mem, metric: percentage-allocated_memory,"
    " strategy: {name: target-value, target: 50}}]"
)


def ask(placements: int, mem: int, **kw: object) -> BlockedAsk:
    return BlockedAsk("e1", "api", "web", placements, 10, mem, **kw)  # type: ignore[arg-type]


def blocked(s: PoolSpec, *asks: BlockedAsk) -> Observed:
    return dataclasses.replace(world(), blocked=asks)


def test_blocked_work_is_sized_on_the_specs_instance_before_any_node_is_ready() -> None:
    s = spec(min=0, max=9, memory="2G", cpus=1, policy=BLOCKED_POLICY)
    p = plan(s, blocked(s, ask(3, mem=1024)), NOW)  # two 1 GiB placements per 2 GiB VM
    assert p.desired == 2
    assert p.scaling is not None and p.scaling.winner == "unplaced"
    assert len(p.actions) == 2


def test_blocked_work_of_the_pools_class_counts_and_of_another_does_not() -> None:
    s = spec(min=0, max=9, node_class="web", policy=BLOCKED_POLICY)
    ours = ask(1, mem=100, class_eligibility={"web": True, "db": False})
    assert plan(s, blocked(s, ours), NOW).desired == 1
    theirs = ask(1, mem=100, class_eligibility={"web": False, "db": True})
    assert plan(s, blocked(s, theirs), NOW).desired == 0


def test_blocked_work_must_be_in_the_pools_node_pool_and_datacenter() -> None:
    s = spec(min=0, max=9, datacenter="dc2", node_pool="edge", policy=BLOCKED_POLICY)
    here = ask(1, mem=100, node_pool="edge", datacenters=("dc2",))
    assert plan(s, blocked(s, here), NOW).desired == 1
    other_dc = ask(1, mem=100, node_pool="edge", datacenters=("dc1",))
    assert plan(s, blocked(s, other_dc), NOW).desired == 0
    other_pool = ask(1, mem=100, node_pool="default", datacenters=("dc2",))
    assert plan(s, blocked(s, other_pool), NOW).desired == 0


def test_only_ready_members_nodes_are_measured() -> None:
    s = spec(min=1, max=9, policy=MEMORY_POLICY)
    members = [ready_member(s, i) for i in range(3)]
    instances = [m[0] for m in members]
    nodes = [m[1] for m in members]
    # The third is draining (ours): its allocations and capacity are not the pool's.
    nodes[2] = dataclasses.replace(nodes[2], draining=True, eligible=False)
    allocations = [
        Allocation("a0", nodes[0].id, "j", memory_mb=1024),  # half of a 2048 MB node
        Allocation("a1", nodes[1].id, "j", memory_mb=1024),
        Allocation("a2", nodes[2].id, "j", memory_mb=2048),
    ]
    observed = dataclasses.replace(world(instances, nodes), allocations=tuple(allocations))
    p = plan(s, observed, NOW)
    assert [m.phase for m in p.members][:2] == [Phase.READY, Phase.READY]
    assert p.scaling is not None
    [mem] = p.scaling.checks
    assert mem.value == 50.0  # 2048 of 4096 MB on the two ready nodes: on target


def test_the_baseline_is_the_serving_members_before_any_decision() -> None:
    s = spec(min=0, max=9, policy=MEMORY_POLICY)
    i0, n0 = ready_member(s, 0)
    i1, n1 = ready_member(s, 1)
    booting = instance(f"web-{s.template_hash}-2", age=10)  # pending: serving, not ready
    allocations = (
        Allocation("a0", n0.id, "j", memory_mb=1024),
        Allocation("a1", n1.id, "j", memory_mb=1024),
    )
    observed = dataclasses.replace(world([i0, i1, booting], [n0, n1]), allocations=allocations)
    p = plan(s, observed, NOW)
    assert p.scaling is not None and p.scaling.baseline == 3  # 2 ready + 1 booting
    assert p.desired == 3  # on target: it stays at what is serving


def test_members_on_their_way_out_are_not_in_the_baseline() -> None:
    # Two serving and one drained by us (to be deleted): the policy starts from two.
    s = spec(min=0, max=9, policy=MEMORY_POLICY)
    members = [ready_member(s, i) for i in range(3)]
    nodes = [m[1] for m in members]
    nodes[2] = dataclasses.replace(
        nodes[2],
        eligible=False,
        drain_meta=drain_meta(s, "scale down"),
        last_drain_status="complete",
    )
    allocations = (
        Allocation("a0", nodes[0].id, "j", memory_mb=1024),
        Allocation("a1", nodes[1].id, "j", memory_mb=1024),
    )
    observed = dataclasses.replace(world([m[0] for m in members], nodes), allocations=allocations)
    p = plan(s, observed, NOW)
    assert p.members[2].phase is Phase.DRAINED
    assert p.scaling is not None and p.scaling.baseline == 2
    assert p.desired == 2
