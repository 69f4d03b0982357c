"""Autoscaling properties: bounds, cooldowns, and target-value converging without flapping."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler.scaling.decide import LastScale, decide
from reconciler.scaling.policy import Policy, parse_policy
from reconciler.scaling.signals import Signals


def check_dicts(t: int, n: int) -> list[dict[str, Any]]:
    """One check of each kind the generator picks from."""
    mem, cpu = "percentage-allocated_memory", "percentage-allocated_cpu"
    return [
        {"metric": mem, "strategy": {"name": "target-value", "target": t}},
        {"metric": cpu, "strategy": {"name": "threshold", "lower_bound": t, "delta": 2}},
        {"metric": cpu, "strategy": {"name": "threshold", "upper_bound": t, "percentage": -50}},
        {"metric": mem, "strategy": {"name": "fixed-value", "value": n}},
        {"metric": cpu, "strategy": {"name": "pass-through"}},
        {"metric": "blocked_evaluations"},
    ]


@st.composite
def policies(
    draw: st.DrawFn, *, blocked: bool = True, cooldowns: tuple[int, int] | None = None
) -> Policy:
    kinds = check_dicts(draw(st.integers(1, 95)), draw(st.integers(0, 30)))
    if not blocked:
        kinds = [k for k in kinds if k["metric"] != "blocked_evaluations"]
    picks = draw(st.lists(st.integers(0, len(kinds) - 1), min_size=1, max_size=4, unique=True))
    down, up = cooldowns or (draw(st.integers(0, 600)), draw(st.integers(0, 600)))
    raw = {
        "cooldown": f"{down}s",
        "cooldown_on_scale_up": f"{up}s",
        "checks": [{"name": f"c{i}", **kinds[k]} for i, k in enumerate(picks)],
    }
    return parse_policy(yaml.safe_dump(raw))


@st.composite
def signal_sets(draw: st.DrawFn) -> Signals:
    ready = draw(st.integers(0, 30))
    pct = st.one_of(st.none(), st.floats(0, 400, allow_nan=False)) if ready else st.none()
    blocked = draw(st.integers(0, 10))
    return Signals(ready, draw(pct), draw(pct), blocked, blocked * 3, 0)


@st.composite
def lasts(draw: st.DrawFn) -> LastScale | None:
    if draw(st.booleans()):
        return None
    return LastScale(
        draw(st.integers(0, 40)), draw(st.floats(0, 2000)), draw(st.sampled_from(["up", "down"]))
    )


@given(
    policies(), signal_sets(), lasts(), st.integers(0, 20), st.integers(0, 20), st.integers(0, 40)
)
def test_the_count_is_always_within_min_and_max(
    policy: Policy, s: Signals, last: LastScale | None, lo: int, extra: int, members: int
) -> None:
    d = decide(policy, s, members=members, minimum=lo, maximum=lo + extra, now=1000.0, last=last)
    assert lo <= d.count <= lo + extra


def cooldown_of(policy: Policy, last: LastScale) -> float:
    """The cooldown after ``last``, by its direction (the Autoscaler's rule)."""
    return policy.cooldown_on_scale_up if last.direction == "up" else policy.cooldown


@given(policies(), signal_sets(), lasts(), st.integers(0, 40))
def test_nothing_scales_inside_a_cooldown_but_blocked_work(
    policy: Policy, s: Signals, last: LastScale | None, members: int
) -> None:
    now = 1000.0
    d = decide(policy, s, members=members, minimum=0, maximum=100, now=now, last=last)
    if last is None or d.scaled is None:
        return
    if now - last.at < cooldown_of(policy, last):
        assert d.scaled == "up" and d.winner is not None
        winner = next(c for c in d.checks if c.name == d.winner)
        assert winner.metric == "blocked_evaluations"


@given(
    st.data(),
    st.lists(st.integers(1, 600), min_size=2, max_size=2, unique=True),
    st.sampled_from(["up", "down"]),
    st.integers(0, 40),
    st.integers(0, 40),
)
def test_no_metric_scales_in_either_direction_inside_the_last_directions_cooldown(
    data: st.DataObject, cooldowns: list[int], direction: str, decided: int, members: int
) -> None:
    # cooldown and cooldown_on_scale_up differ, so taking one for the other shows:
    # whichever is shorter, a time past it but inside the right one is drawn too.
    policy = data.draw(policies(blocked=False, cooldowns=(cooldowns[0], cooldowns[1])))
    s = data.draw(signal_sets())
    last = LastScale(decided, 0.0, direction)
    now = data.draw(st.floats(0, cooldown_of(policy, last), exclude_max=True))
    d = decide(policy, s, members=members, minimum=0, maximum=100, now=now, last=last)
    assert d.scaled is None and d.count == decided, d
    assert d.cooldown_until == cooldown_of(policy, last)


@given(
    load=st.integers(1, 200_000),  # MB allocated by the workload, spread over the pool
    node_mb=st.sampled_from([2048, 4096, 8192]),
    target=st.integers(20, 90),
    start=st.integers(1, 40),
)
def test_target_value_converges_to_the_target_and_stays(
    load: int, node_mb: int, target: int, start: int
) -> None:
    policy = parse_policy(
        "cooldown: 0s\ncooldown_on_scale_up: 0s\nchecks:\n"
        "  - {metric: percentage-allocated_memory,"
        f" strategy: {{name: target-value, target: {target}}}}}"
    )
    n, last, history = start, None, [start]
    for step in range(30):
        metric = 100.0 * load / (n * node_mb)
        s = Signals(n, None, metric, 0, 0, 0)
        d = decide(policy, s, members=n, minimum=1, maximum=1000, now=step * 10.0, last=last)
        if d.scaled is not None:
            last = LastScale(d.count, step * 10.0, d.scaled)
        n = d.count
        history.append(n)
    # Converged: the last moves are no moves (no flapping around the target)...
    assert history[-1] == history[-2] == history[-3], history
    # ...at a size that holds the load at or under the target (give or take the dead band),
    # and not needlessly big: one node fewer would exceed it.
    final = 100.0 * load / (n * node_mb)
    assert final <= target * 1.01 + 1e-9 or n == 1000, (history, final)
    if n > 1:
        assert 100.0 * load / ((n - 1) * node_mb) > target * 0.99 - 1e-9 or n == start, history
