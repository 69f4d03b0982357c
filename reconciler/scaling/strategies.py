"""One pure function per strategy, with the Nomad Autoscaler's arithmetic.

Each takes the current count and the metric value and returns a Proposal: the
count the strategy wants, or None when it wants no change.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.scaling.policy import Strategy


@dataclass(frozen=True)
class Proposal:
    count: int | None  # None: no change wanted
    reason: str

    def direction(self, current: int) -> str:
        if self.count is None or self.count == current:
            return "none"
        return "up" if self.count > current else "down"


def target_value(current: int, metric: float, target: float, threshold: float = 0.01) -> Proposal:
    """Scale so that the metric lands on the target, assuming it scales with the count.

    factor = metric / target (the metric itself when the target is 0); within
    [1 - threshold, 1 + threshold] nothing changes, which keeps a pool that sits
    on its target from flapping. From 0 the factor is the new count.
    """
    factor = metric if target == 0 else metric / target
    if current == 0:
        if factor <= 0:
            return Proposal(None, f"metric {metric:g} with no members: nothing to scale")
        return Proposal(math.ceil(factor), f"factor {factor:.3f} from 0 members")
    if 1 - threshold <= factor <= 1 + threshold:
        return Proposal(None, f"factor {factor:.3f} within 1±{threshold:g} of target {target:g}")
    new = math.ceil(current * factor)
    if new == current:
        return Proposal(None, f"factor {factor:.3f} rounds back to {current}")
    return Proposal(new, f"factor {factor:.3f} = {metric:g} / target {target:g}")


def threshold(
    current: int,
    metric: float,
    *,
    lower_bound: float = -math.inf,
    upper_bound: float = math.inf,
    delta: float | None = None,
    percentage: float | None = None,
    value: float | None = None,
) -> Proposal:
    """When the metric is within [lower_bound, upper_bound), apply the one action given."""
    if not lower_bound <= metric < upper_bound:
        return Proposal(None, f"metric {metric:g} outside [{lower_bound:g}, {upper_bound:g})")
    if delta is not None:
        new, how = current + int(delta), f"{int(delta):+d}"
    elif percentage is not None:
        new, how = math.ceil(current * (1 + percentage / 100)), f"{percentage:+g}%"
    elif value is not None:
        new, how = int(value), f"= {int(value)}"
    else:  # parse_policy requires exactly one action
        raise ValueError("threshold: one of delta, percentage or value is required")
    new = max(new, 0)
    if new == current:
        return Proposal(None, f"metric {metric:g} in bounds; {how} keeps {current}")
    return Proposal(new, f"metric {metric:g} in [{lower_bound:g}, {upper_bound:g}): {how}")


def fixed_value(current: int, metric: float, value: float) -> Proposal:
    """Always the configured count, whatever the metric."""
    new = int(value)
    return Proposal(None if new == current else new, f"fixed value {new}")


def pass_through(current: int, metric: float) -> Proposal:
    """The metric is the count (rounded up)."""
    new = max(0, math.ceil(metric))
    return Proposal(None if new == current else new, f"metric {metric:g} is the count")


def run(strategy: Strategy, current: int, metric: float) -> Proposal:
    """Apply a parsed strategy."""
    o = strategy.options
    runners: dict[str, Callable[[], Proposal]] = {
        "target-value": lambda: target_value(
            current, metric, o["target"], o.get("threshold", 0.01)
        ),
        "threshold": lambda: threshold(
            current,
            metric,
            lower_bound=o.get("lower_bound", -math.inf),
            upper_bound=o.get("upper_bound", math.inf),
            delta=o.get("delta"),
            percentage=o.get("percentage"),
            value=o.get("value"),
        ),
        "fixed-value": lambda: fixed_value(current, metric, o["value"]),
        "pass-through": lambda: pass_through(current, metric),
    }
    return runners[strategy.name]()
