"""Autoscaling as a user reads it: the counts at the edges, and the reasons given.

A decision's reason is stored in the pool's status and shown by ``plan``: it is
what tells a person why the pool has the size it has. These tests pin the
reasons and the boundaries of each strategy, of ``decide`` and of the signals,
through the public functions (strategies, ``parse_policy`` + ``strategies.run``,
``decide``, ``pool_signals``, ``nodes_to_place``).
"""

from __future__ import annotations

import math

import pytest

from reconciler.model import Allocation, BlockedAsk, Node, NodeStatus
from reconciler.scaling import strategies
from reconciler.scaling.decide import LastScale, cooldown_after, decide
from reconciler.scaling.policy import PolicyError, parse_policy
from reconciler.scaling.signals import (
    BIN_PACK_LIMIT,
    Signals,
    nodes_to_place,
    pool_signals,
    targets_pool,
)
from reconciler.scaling.strategies import (
    Proposal,
    fixed_value,
    pass_through,
    target_value,
    threshold,
)

GiB = 1024**3


# ---------------------------------------------------------------- strategies


def test_target_value_reasons_and_edges() -> None:
    assert target_value(0, 0.0, 70.0) == Proposal(
        None, "metric 0 with no members: nothing to scale"
    )
    assert target_value(0, 35.0, 70.0) == Proposal(1, "factor 0.500 from 0 members")
    # The dead band is closed at both ends: exactly 1 ± threshold changes nothing.
    assert target_value(10, 63.0, 70.0, threshold=0.1) == Proposal(
        None, "factor 0.900 within 1±0.1 of target 70"
    )
    assert target_value(10, 77.0, 70.0, threshold=0.1).count is None
    assert target_value(10, 84.0, 70.0) == Proposal(12, "factor 1.200 = 84 / target 70")
    assert target_value(10, 66.5, 70.0) == Proposal(None, "factor 0.950 rounds back to 10")


def test_threshold_reasons_and_edges() -> None:
    assert threshold(4, 50.0, lower_bound=70, delta=2) == Proposal(
        None, "metric 50 outside [70, inf)"
    )
    assert threshold(4, 80.0, lower_bound=70, delta=2) == Proposal(6, "metric 80 in [70, inf): +2")
    assert threshold(10, 5.0, upper_bound=10, percentage=-50) == Proposal(
        5, "metric 5 in [-inf, 10): -50%"
    )
    assert threshold(3, 95.0, lower_bound=90, value=3) == Proposal(
        None, "metric 95 in bounds; = 3 keeps 3"
    )
    with pytest.raises(ValueError, match=r"^threshold: one of delta, percentage or value is"):
        threshold(3, 1.0)


def test_fixed_value_and_pass_through_reasons() -> None:
    assert fixed_value(2, 0.0, 5) == Proposal(5, "fixed value 5")
    assert pass_through(3, 0.0) == Proposal(0, "metric 0 is the count")  # down to none
    assert pass_through(3, -2.0).count == 0


def test_a_proposals_direction_is_judged_against_the_current_count() -> None:
    assert Proposal(None, "").direction(3) == "none"
    assert Proposal(3, "").direction(3) == "none"
    assert Proposal(4, "").direction(3) == "up"
    assert Proposal(2, "").direction(3) == "down"


def _strategy(yaml_strategy: str) -> strategies.Strategy:
    policy = parse_policy(
        f"checks: [{{name: c, metric: percentage-allocated_cpu, strategy: {yaml_strategy}}}]"
    )
    strategy = policy.checks[0].strategy
    assert strategy is not None
    return strategy


def test_run_applies_every_option_of_a_parsed_strategy() -> None:
    tv = _strategy("{name: target-value, target: 70, threshold: 0.2}")
    assert strategies.run(tv, 10, 80.0).count is None  # within the 0.2 band it was given
    assert strategies.run(_strategy("{name: target-value, target: 70}"), 10, 80.0).count == 12
    band = _strategy("{name: threshold, lower_bound: 10, upper_bound: 20, value: 7}")
    assert strategies.run(band, 3, 15.0).count == 7
    assert strategies.run(band, 3, 5.0).count is None  # below lower_bound
    assert strategies.run(band, 3, 25.0).count is None  # at or above upper_bound
    pct = _strategy("{name: threshold, lower_bound: 50, percentage: 50}")
    assert strategies.run(pct, 4, 60.0).count == 6
    fixed = strategies.run(_strategy("{name: fixed-value, value: 4}"), 2, 1.0)
    assert fixed == Proposal(4, "fixed value 4")
    assert strategies.run(_strategy("{name: fixed-value, value: 4}"), 4, 1.0).count is None
    through = strategies.run(_strategy("{name: pass-through}"), 2, 5.0)
    assert through == Proposal(5, "metric 5 is the count")
    assert strategies.run(_strategy("{name: pass-through}"), 5, 5.0).count is None


def test_threshold_bounds_must_be_ordered() -> None:
    with pytest.raises(PolicyError) as exc:
        _strategy("{name: threshold, lower_bound: 20, upper_bound: 20, delta: 1}")
    assert exc.value.problems == [
        "policy.checks[0].strategy: lower_bound (20) must be below upper_bound (20)"
    ]
    assert str(exc.value) == exc.value.problems[0]
    _strategy("{name: threshold, lower_bound: 10, upper_bound: 20, delta: 1}")  # fine


def test_policy_problems_are_joined_in_the_error_text() -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy("cooldown: soon\nchecks: [{metric: nope}]")
    assert len(exc.value.problems) >= 2
    assert str(exc.value) == "; ".join(exc.value.problems)


# ---------------------------------------------------------------- decide

POLICY = parse_policy(
    """
cooldown: 5m
cooldown_on_scale_up: 1m
checks:
  - {name: mem, metric: percentage-allocated_memory, strategy: {name: target-value, target: 50}}
  - {name: blocked, metric: blocked_evaluations}
"""
)


def sig(ready: int, mem: float | None, blocked: int = 0, unplaceable: int = 0) -> Signals:
    return Signals(ready, None, mem, blocked, blocked * 2, unplaceable)


def test_a_decision_records_its_baseline_winner_and_reason() -> None:
    d = decide(POLICY, sig(4, mem=100), members=4, minimum=1, maximum=20, now=1000, last=None)
    assert (d.count, d.baseline, d.winner, d.scaled) == (8, 4, "mem", "up")
    assert d.reason == "policy: check mem (factor 2.000 = 100 / target 50) -> 8"
    assert d.cooldown_remaining == 0.0 and d.cooldown_until is None
    assert d.clamped_from is None
    [mem, blocked] = d.checks
    assert (mem.name, mem.metric, mem.value, mem.proposal, mem.direction, mem.opinion) == (
        "mem",
        "percentage-allocated_memory",
        100.0,
        8,
        "up",
        True,
    )
    assert (blocked.proposal, blocked.direction, blocked.reason) == (
        None,
        "none",
        "nothing blocked",
    )


def test_a_clamped_decision_says_so() -> None:
    d = decide(POLICY, sig(4, mem=100), members=4, minimum=1, maximum=6, now=0, last=None)
    assert (d.count, d.clamped_from, d.scaled) == (6, 8, "up")
    assert d.reason == (
        "policy: check mem (factor 2.000 = 100 / target 50) -> 8, clamped to [1, 6] -> 6"
    )


def test_a_scale_down_is_named_down() -> None:
    d = decide(POLICY, sig(4, mem=25), members=4, minimum=1, maximum=6, now=0, last=None)
    assert (d.count, d.scaled) == (2, "down")


def test_no_change_is_not_a_scaling() -> None:
    d = decide(POLICY, sig(4, mem=50), members=4, minimum=1, maximum=6, now=0, last=None)
    assert (d.count, d.scaled, d.winner) == (4, None, None)
    assert d.reason == "policy: no check wants a change; stays 4"


def test_a_check_without_data_says_so_and_has_no_opinion() -> None:
    d = decide(POLICY, sig(0, mem=None), members=0, minimum=0, maximum=6, now=0, last=None)
    [mem, _] = d.checks
    assert (mem.name, mem.metric, mem.value, mem.proposal, mem.direction, mem.reason) == (
        "mem",
        "percentage-allocated_memory",
        None,
        None,
        "none",
        "no ready node: no data",
    )
    assert not mem.opinion


def test_the_cooldown_counts_down_to_zero_and_names_its_option() -> None:
    last = LastScale(count=5, at=1000.0, direction="up")
    d = decide(POLICY, sig(5, mem=100), members=5, minimum=1, maximum=20, now=1030.0, last=last)
    assert d.count == 5 and d.winner is None
    assert d.cooldown_remaining == 30.0 and d.cooldown_until == 1060.0
    assert d.reason == ("policy: in cooldown_on_scale_up (60s) after the scale-up to 5; stays 5")
    cooldown = cooldown_after(POLICY, last, 1059.5)
    assert cooldown is not None and cooldown.remaining(1059.5) == 0.5
    assert cooldown.remaining(1070.0) == 0.0  # never negative
    assert cooldown_after(POLICY, last, 1060.0) is None  # over at its end


def test_blocked_work_reasons() -> None:
    d = decide(POLICY, sig(2, mem=50, blocked=3), members=2, minimum=0, maximum=9, now=0, last=None)
    blocked = d.checks[1]
    assert (blocked.value, blocked.proposal, blocked.direction, blocked.opinion) == (
        3.0,
        5,
        "up",
        True,
    )
    assert blocked.reason == "6 blocked placements need 3 more nodes beside 2 ready"
    # A count that already covers them (members still booting): stay, and veto shrinking.
    d = decide(POLICY, sig(2, mem=10, blocked=3), members=5, minimum=0, maximum=9, now=0, last=None)
    covered = d.checks[1]
    assert (covered.value, covered.proposal, covered.direction, covered.opinion) == (
        3.0,
        5,
        "none",
        True,
    )
    assert covered.metric == "blocked_evaluations"
    assert covered.reason == (
        "6 blocked placements need 3 more nodes beside 2 ready; the pool's count 5 covers them"
    )
    assert d.count == 5  # mem wanted 1: vetoed by the waiting work
    # Exactly covered counts as covered.
    d = decide(POLICY, sig(2, mem=50, blocked=3), members=5, minimum=0, maximum=9, now=0, last=None)
    assert d.checks[1].direction == "none"
    # Nothing blocked that an instance could hold, but some too big for one.
    d = decide(
        POLICY, sig(2, mem=50, unplaceable=4), members=2, minimum=0, maximum=9, now=0, last=None
    )
    assert d.checks[1].reason == (
        "nothing blocked that one instance could hold (4 placements too big)"
    )


def test_of_two_scale_ups_the_larger_wins_and_ties_go_by_name() -> None:
    policy = parse_policy(
        """
checks:
  - {name: a, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 6}}
  - {name: b, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 9}}
  - {name: c, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 9}}
"""
    )
    d = decide(policy, sig(3, mem=1), members=3, minimum=0, maximum=20, now=0, last=None)
    assert (d.count, d.winner) == (9, "c")
    by_size = parse_policy(
        """
checks:
  - {name: a, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 9}}
  - {name: b, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 6}}
"""
    )
    d = decide(by_size, sig(3, mem=1), members=3, minimum=0, maximum=20, now=0, last=None)
    assert (d.count, d.winner) == (9, "a")  # the larger proposal, not the later name
    # In a cooldown, only blocked work scales up, the largest need first.
    two = parse_policy(
        """
checks:
  - {name: a, metric: blocked_evaluations}
  - {name: z, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 9}}
"""
    )
    last = LastScale(count=3, at=0.0, direction="up")
    d = decide(two, sig(3, mem=1, blocked=2), members=3, minimum=0, maximum=20, now=1, last=last)
    assert (d.count, d.winner) == (5, "a")
    both_blocked = parse_policy(
        """
checks:
  - {name: a, metric: blocked_evaluations}
  - {name: b, metric: blocked_evaluations}
"""
    )
    d = decide(
        both_blocked, sig(3, mem=1, blocked=2), members=3, minimum=0, maximum=20, now=1, last=last
    )
    assert (d.count, d.winner) == (5, "b")  # equal needs: the tie goes by name


def test_of_scale_downs_the_least_aggressive_wins() -> None:
    policy = parse_policy(
        """
checks:
  - {name: a, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 1}}
  - {name: b, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 2}}
"""
    )
    d = decide(policy, sig(4, mem=1), members=4, minimum=0, maximum=20, now=0, last=None)
    assert (d.count, d.winner, d.scaled) == (2, "b", "down")
    one_or_none = parse_policy(
        """
checks:
  - {name: a, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 1}}
  - {name: b, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 0}}
"""
    )
    d = decide(one_or_none, sig(4, mem=1), members=4, minimum=0, maximum=20, now=0, last=None)
    assert (d.count, d.winner) == (1, "a")  # 1 is less aggressive than 0
    to_zero = parse_policy(
        """
checks:
  - {name: a, metric: percentage-allocated_memory, strategy: {name: fixed-value, value: 0}}
  - {name: b, metric: percentage-allocated_memory, strategy: {name: pass-through}}
"""
    )
    d = decide(to_zero, sig(4, mem=0.0), members=4, minimum=0, maximum=20, now=0, last=None)
    assert (d.count, d.winner) == (0, "b")  # both want 0: the tie goes by name


# ---------------------------------------------------------------- signals


def nodes(n: int, cpu: int = 4000, mem: int = 4096) -> list[Node]:
    return [
        Node(id=f"n{i}", name=f"web-bcdfg-{i}", status=NodeStatus.READY, cpu_mhz=cpu, memory_mb=mem)
        for i in range(n)
    ]


def ask(placements: int, cpu: int = 0, mem: int = 0, **kw: object) -> BlockedAsk:
    return BlockedAsk("e", "job", "tg", placements, cpu, mem, **kw)  # type: ignore[arg-type]


def signals(ready: list[Node], allocs=(), blocked=(), **kw: object) -> Signals:  # type: ignore[no-untyped-def]
    args = {
        "node_class": "web",
        "node_pool": "default",
        "instance_cpus": 2,
        "instance_memory_bytes": 2 * GiB,
        **kw,
    }
    return pool_signals(ready, allocs, blocked, **args)  # type: ignore[arg-type]


def test_allocated_shares_sum_every_live_allocation() -> None:
    allocs = [
        Allocation("a", "n0", "j", cpu_mhz=1000, memory_mb=1024),
        Allocation("b", "n0", "j", cpu_mhz=1000, memory_mb=1024, client_status="pending"),
        Allocation("c", "n1", "j", cpu_mhz=2000, memory_mb=2048),
        Allocation("d", "n1", "j", cpu_mhz=4000, memory_mb=4096, desired_status="stop"),
    ]
    s = signals(nodes(2), allocs)
    assert s.ready_nodes == 2
    assert s.cpu_percent == 50.0 and s.memory_percent == 50.0
    assert s.value("percentage-allocated_cpu") == 50.0
    assert s.value("percentage-allocated_memory") == 50.0
    assert signals([]).cpu_percent is None


def test_blocked_work_is_sized_on_the_nodes_the_pool_really_has() -> None:
    # Nodes of 3000 MHz / 3000 MB (uneven: 2 of them): a 1600 MB ask fits one per node.
    ready = nodes(2, cpu=3000, mem=3000)
    s = signals(ready, blocked=[ask(3, cpu=100, mem=1600)])
    assert (s.blocked_nodes, s.blocked_placements, s.unplaceable) == (3, 3, 0)
    assert s.value("blocked_evaluations") == 3.0
    # An ask exactly one node's size fits; one MHz or MB more does not.
    assert signals(ready, blocked=[ask(1, cpu=3000, mem=3000)]).blocked_nodes == 1
    assert signals(ready, blocked=[ask(1, cpu=3001)]).unplaceable == 1
    assert signals(ready, blocked=[ask(1, mem=3001)]).unplaceable == 1
    # Uneven nodes: a node's size is the mean, rounded down (never overestimated).
    mixed = [*nodes(1, cpu=3000, mem=3001), *nodes(1, cpu=3001, mem=3000)]
    assert signals(mixed, blocked=[ask(1, mem=3001)]).unplaceable == 1


def test_without_ready_nodes_the_specs_size_is_the_yardstick() -> None:
    # 2 cpus x 2000 MHz, 2 GiB: 2048 MB fits, 2049 does not.
    assert signals([], blocked=[ask(1, mem=2048)]).blocked_nodes == 1
    assert signals([], blocked=[ask(1, mem=2049)]).unplaceable == 1
    assert signals([], blocked=[ask(1, cpu=4000)]).blocked_nodes == 1
    assert signals([], blocked=[ask(1, cpu=4001)]).unplaceable == 1


def test_every_blocked_ask_counts_not_only_the_first_or_last() -> None:
    s = signals(
        [],
        blocked=[
            ask(2, mem=8192),
            ask(1, node_pool="gpu"),  # another pool's: skipped, the rest still counted
            ask(3, mem=9000),
            ask(2, mem=1024),
            ask(1, mem=1024),
        ],
    )
    assert s.unplaceable == 5
    assert s.blocked_placements == 3
    assert s.blocked_nodes == 2  # 3 x 1 GiB on 2 GiB instances


def test_blocked_work_is_matched_on_the_pools_class_and_datacenter() -> None:
    web_only = ask(1, mem=100, class_eligibility={"web": True, "db": False})
    assert signals([], blocked=[web_only]).blocked_nodes == 1
    assert signals([], blocked=[web_only], node_class="db").blocked_nodes == 0
    in_dc2 = ask(1, mem=100, datacenters=("dc2",))
    assert signals([], blocked=[in_dc2]).blocked_nodes == 0  # the pool's default is dc1
    assert signals([], blocked=[in_dc2], datacenter="dc2").blocked_nodes == 1
    assert targets_pool(ask(1, datacenters=("dc1",)), node_class="web", node_pool="default")
    # pool_signals without a datacenter judges as dc1, as targets_pool does.
    default_dc = pool_signals(
        [],
        [],
        [ask(1, mem=100, datacenters=("dc1",))],
        node_class="web",
        node_pool="default",
        instance_cpus=1,
        instance_memory_bytes=GiB,
    )
    assert default_dc.blocked_nodes == 1
    assert not targets_pool(
        ask(1, datacenters=("dc1",)), node_class="web", node_pool="default", datacenter="dc2"
    )
    eligible = ask(1, class_eligibility={"web": True, "gpu": False})
    assert targets_pool(eligible, node_class="web", node_pool="default")


def test_nodes_to_place_packs_first_fit_decreasing() -> None:
    assert nodes_to_place([], 4000, 4096) == 0
    assert nodes_to_place([ask(1, cpu=1, mem=1)], 4000, 4096) == 1
    # cpu and memory are packed separately: two asks that fill one dimension each share.
    assert nodes_to_place([ask(1, cpu=4000, mem=0), ask(1, cpu=0, mem=4096)], 4000, 4096) == 1
    assert nodes_to_place([ask(2, cpu=3000, mem=100)], 4000, 4096) == 2
    assert nodes_to_place([ask(2, cpu=100, mem=3000)], 4000, 4096) == 2
    # Largest first: 3 GB then 1 GB pack two to a node (smallest first would need 3).
    asks = [ask(2, mem=1024), ask(2, mem=3072)]
    assert nodes_to_place(asks, 4000, 4096) == 2
    # CPU-heavy asks sort by their CPU share.
    cpu_asks = [ask(2, cpu=1000, mem=10), ask(2, cpu=3000, mem=10)]
    assert nodes_to_place(cpu_asks, 4000, 4096) == 2


def test_beyond_the_bin_pack_limit_a_per_ask_estimate_never_too_few() -> None:
    many = ask(BIN_PACK_LIMIT + 2, cpu=1000, mem=1024)  # 4 to a 4000 MHz / 4096 MB node
    assert nodes_to_place([many], 4000, 4096) == math.ceil((BIN_PACK_LIMIT + 2) / 4)
    exactly = ask(BIN_PACK_LIMIT, cpu=1000, mem=1024)  # at the limit: still packed
    assert nodes_to_place([exactly], 4000, 4096) == BIN_PACK_LIMIT // 4
    mem_bound = ask(BIN_PACK_LIMIT + 1, cpu=0, mem=2048)  # 2 to a node by memory
    assert nodes_to_place([mem_bound], 4000, 4096) == math.ceil((BIN_PACK_LIMIT + 1) / 2)
    cpu_bound = ask(BIN_PACK_LIMIT + 1, cpu=2000, mem=0)
    assert nodes_to_place([cpu_bound], 4000, 4096) == math.ceil((BIN_PACK_LIMIT + 1) / 2)
    two = [ask(BIN_PACK_LIMIT, cpu=4000, mem=1), ask(3, cpu=1, mem=4096)]
    assert nodes_to_place(two, 4000, 4096) == BIN_PACK_LIMIT + 3


def test_packing_is_by_each_asks_larger_share_and_counts_what_each_node_gives() -> None:
    # Largest share first: the 3 GiB asks open the nodes and the 1 GiB ones fill them
    # (1 GiB first would leave no room for a 3 GiB one beside two of them: 3 nodes).
    mixed = [ask(2, cpu=1, mem=1024), ask(2, cpu=0, mem=3072)]
    assert nodes_to_place(mixed, 4000, 4096) == 2
    # Each placement takes its CPU from the node it lands on.
    assert nodes_to_place([ask(3, cpu=1500, mem=1)], 4000, 4096) == 2
    assert nodes_to_place([ask(3, cpu=1, mem=1500)], 4000, 4096) == 2


def test_the_per_ask_estimate_counts_whole_placements_per_node() -> None:
    n = BIN_PACK_LIMIT + 1
    assert nodes_to_place([ask(n, cpu=1500)], 4000, 4096) == math.ceil(n / 2)  # 2 per node
    assert nodes_to_place([ask(n, mem=1500)], 4000, 4096) == math.ceil(n / 2)
    assert nodes_to_place([ask(n)], 4000, 4096) == n  # asks for nothing: one per node


def test_at_the_bin_pack_limit_placements_are_still_packed() -> None:
    # 1000 big + 1000 small: packed, each small one shares a big one's node (1000);
    # the per-ask estimate would say 1000 + 250.
    half = BIN_PACK_LIMIT // 2
    asks = [ask(half, cpu=3000, mem=10), ask(half, cpu=1000, mem=10)]
    assert nodes_to_place(asks, 4000, 4096) == half
