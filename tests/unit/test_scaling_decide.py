"""Signals from a world, and decide() combining checks with cooldowns."""

from __future__ import annotations

from reconciler.model import Allocation, BlockedAsk, Node, NodeStatus
from reconciler.scaling.decide import Decision, LastScale, decide
from reconciler.scaling.policy import parse_policy
from reconciler.scaling.signals import Signals, pool_signals, targets_pool

GiB = 1024**3


def nodes(n: int) -> list[Node]:
    return [
        Node(
            id=f"n{i}", name=f"web-bcdfg-{i}", status=NodeStatus.READY, cpu_mhz=4000, memory_mb=4096
        )
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


def test_allocated_percentages_count_live_allocations_on_ready_nodes_only() -> None:
    ready = nodes(2)
    allocs = [
        Allocation("a", "n0", "j", cpu_mhz=1000, memory_mb=2048),
        Allocation("b", "n1", "j", cpu_mhz=1000, memory_mb=1024, client_status="complete"),
        Allocation("c", "elsewhere", "j", cpu_mhz=4000, memory_mb=4096),
    ]
    s = signals(ready, allocs)
    assert s.cpu_percent == 12.5 and s.memory_percent == 25.0
    assert signals([]).memory_percent is None  # no capacity: no data, not 0% or 100%


def test_blocked_placements_become_nodes_of_the_pools_size() -> None:
    # Ready nodes offer 4096 MB each: two 1.5 GB placements fit on one, so 5 need 3
    # nodes (7.5 GB / 4 GB would say 2, and one placement would stay blocked).
    assert signals(nodes(1), blocked=[ask(5, mem=1536)]).blocked_nodes == 3
    # Packed together: a 3 GB placement leaves room for a 1 GB one beside it.
    assert signals(nodes(1), blocked=[ask(2, mem=3072), ask(2, mem=1024)]).blocked_nodes == 2
    # No ready node yet: the spec's size (2 cpus x 2000 MHz, 2 GiB) is the yardstick.
    assert signals([], blocked=[ask(3, cpu=3000)]).blocked_nodes == 3
    too_big = signals([], blocked=[ask(2, mem=8192)])
    assert too_big.blocked_nodes == 0 and too_big.unplaceable == 2


def uneven(cpu: tuple[int, int], memory: tuple[int, int]) -> list[Node]:
    return [
        Node(id=f"n{i}", name=f"web-bcdfg-{i}", status=NodeStatus.READY, cpu_mhz=c, memory_mb=m)
        for i, (c, m) in enumerate(zip(cpu, memory, strict=True))
    ]


def test_a_node_of_the_pool_offers_the_whole_mhz_and_mb_its_nodes_average() -> None:
    """Nodes of one size report slightly uneven capacity (4000 and 4001 MHz; 4096 and 4097
    MB): the yardstick is their average in whole units, as Nomad counts them, 4000 MHz and
    4096 MB. Here the blocked work then fills two such nodes exactly (placements of an equal
    share of a node are packed in the order Nomad lists them); a fractional yardstick would
    reorder them by a hair and ask for a third node."""
    by_cpu = [ask(1, cpu=2000, mem=2048), ask(3, cpu=2000, mem=1024), ask(1, cpu=0, mem=2048)]
    assert signals(uneven((4000, 4001), (4096, 4096)), blocked=by_cpu).blocked_nodes == 2
    by_memory = [ask(2, cpu=1000, mem=2048), ask(1, cpu=2000, mem=0), ask(2, cpu=2000, mem=1024)]
    assert signals(uneven((4000, 4000), (4096, 4097)), blocked=by_memory).blocked_nodes == 2


def test_blocked_work_of_another_pool_or_class_is_not_ours() -> None:
    assert not targets_pool(ask(1, node_pool="gpu"), node_class="web", node_pool="default")
    gpu_only = ask(1, class_eligibility={"gpu": True, "web": False})
    assert not targets_pool(gpu_only, node_class="web", node_pool="default")
    # Nomad saw no node of our class; a job that ruled out a class we cannot judge.
    constrained = ask(1, class_eligibility={"gpu": False})
    assert not targets_pool(constrained, node_class="web", node_pool="default")
    assert targets_pool(ask(1), node_class="web", node_pool="default")
    # What the job says beats what the evaluation could see.
    in_dc9 = ask(1, datacenters=("dc9",))
    assert not targets_pool(in_dc9, node_class="web", node_pool="default", datacenter="dc1")
    anywhere = ask(1, datacenters=("dc*",), node_classes=("web",))
    assert targets_pool(anywhere, node_class="web", node_pool="default", datacenter="dc1")
    assert not targets_pool(anywhere, node_class="db", node_pool="default", datacenter="dc1")


POLICY = parse_policy(
    """
cooldown: 5m
cooldown_on_scale_up: 1m
checks:
  - {name: mem, metric: percentage-allocated_memory, strategy: {name: target-value, target: 50}}
  - {name: cpu, metric: percentage-allocated_cpu,
     strategy: {name: threshold, upper_bound: 20, delta: -1}}
  - {name: blocked, metric: blocked_evaluations}
"""
)


def sig(ready: int, mem: float | None, cpu: float | None, blocked: int = 0) -> Signals:
    return Signals(ready, cpu, mem, blocked, blocked * 2, 0)


def test_the_largest_scale_up_wins() -> None:
    d = decide(
        POLICY,
        sig(4, mem=100, cpu=10, blocked=1),
        members=4,
        minimum=1,
        maximum=20,
        now=1000,
        last=None,
    )
    assert (d.count, d.winner, d.scaled) == (8, "mem", "up")


def test_scale_down_needs_every_check_with_data_to_agree() -> None:
    # mem on target (no change) vetoes cpu's -1.
    d = decide(
        POLICY, sig(4, mem=50, cpu=10), members=4, minimum=1, maximum=20, now=1000, last=None
    )
    assert d.count == 4 and d.winner is None
    # mem wants 2, cpu wants 3: both down; the least aggressive (3) wins.
    d = decide(
        POLICY, sig(4, mem=25, cpu=10), members=4, minimum=1, maximum=20, now=1000, last=None
    )
    assert (d.count, d.winner, d.scaled) == (3, "cpu", "down")


def test_cooldowns_hold_metric_changes_but_not_blocked_work() -> None:
    last = LastScale(count=4, at=1000, direction="up")
    up = decide(
        POLICY, sig(4, mem=100, cpu=50), members=4, minimum=1, maximum=20, now=1030, last=last
    )
    assert up.count == 4 and up.scaled is None and up.cooldown_remaining == 30
    assert up.cooldown_until == 1060 and "in cooldown_on_scale_up" in up.reason
    blocked = decide(
        POLICY,
        sig(4, mem=100, cpu=50, blocked=2),
        members=4,
        minimum=1,
        maximum=20,
        now=1030,
        last=last,
    )
    assert (blocked.count, blocked.winner, blocked.scaled) == (6, "blocked", "up")
    after = decide(
        POLICY, sig(4, mem=10, cpu=10), members=4, minimum=1, maximum=20, now=1061, last=last
    )
    assert after.count == 3 and after.cooldown_until is None  # cpu's -1 and mem's 1 -> 3


# cooldown and cooldown_on_scale_up far apart, so a mix-up between them shows.
SPLIT = parse_policy(
    """
cooldown: 10m
cooldown_on_scale_up: 20s
checks:
  - {name: mem, metric: percentage-allocated_memory, strategy: {name: target-value, target: 70}}
"""
)
HIGH, LOW = sig(5, mem=90, cpu=None), sig(5, mem=20, cpu=None)


def test_the_cooldown_is_chosen_by_the_last_scaling_direction_not_the_next() -> None:
    def at(now: float, s: Signals, direction: str):  # type: ignore[no-untyped-def]
        last = LastScale(5, 0.0, direction)
        return decide(SPLIT, s, members=5, minimum=1, maximum=10, now=now, last=last)

    # 30 s after a scale-down: `cooldown` (10m) holds, a scale-up as much as a scale-down.
    for s in (HIGH, LOW):
        d = at(30, s, "down")
        assert (d.count, d.scaled) == (5, None), d
        assert d.cooldown_until == 600.0
        assert d.reason == "policy: in cooldown (600s) after the scale-down to 5; stays 5"
    # 30 s after a scale-up: `cooldown_on_scale_up` (20s) is over, both directions may move.
    assert (at(30, HIGH, "up").scaled, at(30, LOW, "up").scaled) == ("up", "down")
    # 10 s after a scale-up: held either way.
    assert at(10, HIGH, "up").scaled is None and at(10, LOW, "up").scaled is None
    assert at(599, LOW, "down").scaled is None and at(600, LOW, "down").scaled == "down"


def test_strategies_start_from_the_decided_count_members_on_their_way_included() -> None:
    # Decided 5, of which 3 ready and 2 still booting; memory at 90% on the ready ones.
    def run(strategy: str) -> Decision:
        policy = parse_policy(
            "checks:\n  - {name: hi, metric: percentage-allocated_memory,"
            f" strategy: {{name: threshold, lower_bound: 80, {strategy}}}}}"
        )
        s = Signals(3, 50.0, 90.0, 0, 0, 0)
        last = LastScale(5, 0.0, "up")
        return decide(policy, s, members=5, minimum=1, maximum=10, now=1000.0, last=last)

    up = run("delta: 1")  # a scale-up rule scales up: 5 + 1, never 3 + 1 = "down" to 4
    assert (up.count, up.scaled, up.checks[0].direction) == (6, "up", "up")
    assert (run("percentage: 50").count, run("percentage: 50").scaled) == (8, "up")
    assert run("delta: -1").count == 4  # and a scale-down rule from the same count


def test_blocked_work_counts_members_on_their_way_and_never_votes_down() -> None:
    def with_blocked(blocked: int, mem: float, cpu: float) -> Decision:
        # 3 ready of 5 decided: 2 members still booting.
        s = sig(3, mem=mem, cpu=cpu, blocked=blocked)
        last = LastScale(5, 0.0, "up")
        return decide(POLICY, s, members=5, minimum=1, maximum=20, now=9e3, last=last)

    # Blocked work vetoes the scale-down both metrics want, though the booting cover it.
    low = with_blocked(1, mem=5, cpu=5)
    assert (low.count, low.scaled) == (5, None), low
    check = next(c for c in low.checks if c.name == "blocked")
    assert (check.direction, check.proposal) == ("none", 5) and "covers them" in check.reason
    # More than the booting members can take: grow to ready + needed.
    more = with_blocked(4, mem=50, cpu=10)
    assert (more.count, more.winner, more.scaled) == (7, "blocked", "up")


def test_the_count_is_clamped_and_says_so() -> None:
    d = decide(POLICY, sig(4, mem=500, cpu=50), members=4, minimum=1, maximum=6, now=0, last=None)
    assert d.count == 6 and d.clamped_from == 40 and "clamped to [1, 6]" in d.reason


def test_no_data_keeps_the_last_decision() -> None:
    last = LastScale(count=5, at=0, direction="up")
    d = decide(
        POLICY, sig(0, mem=None, cpu=None), members=2, minimum=1, maximum=20, now=10_000, last=last
    )
    assert d.count == 5 and d.scaled is None
