"""From a policy and the pool's signals to one desired count, and why.

The rules, as the Nomad Autoscaler applies them to several checks:
* scale up when any check wants more; the largest proposal wins;
* scale down only when every check with an opinion wants less; then the largest
  (least aggressive) proposal wins. A check on its target votes to stay (and so
  vetoes); one without data, or a blocked_evaluations check with nothing
  blocked, has no opinion;
* after a scaling decision nothing scales down for ``cooldown`` and nothing
  scales up for ``cooldown_on_scale_up`` (both counted from the decision's time,
  read back from the status variable, so a restart does not reset them);
* except: a ``blocked_evaluations`` check wanting more ignores the cooldown.
  Work Nomad cannot place is the reason the pool exists, and waiting minutes
  for a metric to confirm it is what the Autoscaler gets wrong.

Metric strategies scale from the pool's ready nodes, the capacity the metric
was measured on: while new members boot the same metric proposes the same
count again instead of compounding. "No change" means the last decided count
(or, before any decision, the members the pool has). The result is clamped to
[min, max].
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.scaling import strategies
from reconciler.scaling.policy import BLOCKED, Check, Policy
from reconciler.scaling.signals import Signals


@dataclass(frozen=True)
class LastScale:
    """The last scaling decision, as the status variable recorded it."""

    count: int
    at: float
    direction: str  # "up" | "down"


@dataclass(frozen=True)
class CheckResult:
    name: str
    metric: str
    value: float | None
    proposal: int | None
    direction: str  # up | down | none
    reason: str
    opinion: bool = False  # had data to judge by (a check without data does not vote)


@dataclass(frozen=True)
class Decision:
    count: int
    reason: str
    checks: tuple[CheckResult, ...]
    winner: str | None = None
    baseline: int = 0
    clamped_from: int | None = None
    cooldown_remaining: float = 0.0
    scaled: str | None = None  # "up" | "down" when this decision moved the count


def decide(
    policy: Policy,
    signals: Signals,
    *,
    members: int,
    minimum: int,
    maximum: int,
    now: float,
    last: LastScale | None,
) -> Decision:
    """The desired count for a pool of ``members`` serving members."""
    baseline = _clamp(last.count if last is not None else members, minimum, maximum)
    results = tuple(_run_check(c, signals, baseline) for c in policy.checks)
    ups = [r for r in results if r.direction == "up"]
    opinions = [r for r in results if r.opinion]
    since = now - last.at if last is not None else float("inf")
    up_wait = max(0.0, policy.cooldown_on_scale_up - since)
    down_wait = max(0.0, policy.cooldown - since)

    winner: CheckResult | None = None
    held = ""
    if ups:
        allowed = ups if up_wait == 0 else [r for r in ups if r.metric == BLOCKED]
        if allowed:
            winner = max(allowed, key=lambda r: (r.proposal or 0, r.name))
        else:
            held = f"scale-up held by cooldown_on_scale_up ({up_wait:.0f}s left)"
    elif opinions and all(r.direction == "down" for r in opinions):
        if down_wait == 0:
            winner = max(opinions, key=lambda r: (r.proposal or 0, r.name))  # least aggressive
        else:
            held = f"scale-down held by cooldown ({down_wait:.0f}s left)"

    wanted = winner.proposal if winner is not None and winner.proposal is not None else baseline
    count = _clamp(wanted, minimum, maximum)
    clamped_from = wanted if count != wanted else None
    scaled = None
    if winner is not None and count != baseline:
        scaled = "up" if count > baseline else "down"
    return Decision(
        count=count,
        reason=_reason(winner, held, baseline, count, clamped_from, minimum, maximum),
        checks=results,
        winner=winner.name if winner is not None else None,
        baseline=baseline,
        clamped_from=clamped_from,
        cooldown_remaining=up_wait if ups else (down_wait if held else 0.0),
        scaled=scaled,
    )


def _run_check(check: Check, signals: Signals, baseline: int) -> CheckResult:
    value = signals.value(check.metric)
    if check.metric == BLOCKED:
        if not signals.blocked_nodes:
            why = "nothing blocked"
            if signals.unplaceable:
                why += f" that one instance could hold ({signals.unplaceable} placements too big)"
            return CheckResult(check.name, check.metric, value, None, "none", why)
        proposal = signals.ready_nodes + signals.blocked_nodes
        why = (
            f"{signals.blocked_placements} blocked placements need {signals.blocked_nodes} "
            f"more nodes beside {signals.ready_nodes} ready"
        )
        return CheckResult(
            check.name, check.metric, value, proposal, _direction(proposal, baseline), why, True
        )
    if value is None:
        return CheckResult(check.name, check.metric, None, None, "none", "no ready node: no data")
    assert check.strategy is not None  # parse_policy gives every metric check a strategy
    p = strategies.run(check.strategy, signals.ready_nodes, value)
    # A strategy that wants no change has an opinion all the same: stay (it vetoes a
    # scale-down that other checks want).
    return CheckResult(
        check.name, check.metric, value, p.count, _direction(p.count, baseline), p.reason, True
    )


def _direction(proposal: int | None, baseline: int) -> str:
    if proposal is None or proposal == baseline:
        return "none"
    return "up" if proposal > baseline else "down"


def _clamp(n: int, lo: int, hi: int) -> int:
    return min(max(n, lo), hi)


def _reason(
    winner: CheckResult | None,
    held: str,
    baseline: int,
    count: int,
    clamped_from: int | None,
    lo: int,
    hi: int,
) -> str:
    if winner is not None:
        text = f"policy: check {winner.name} ({winner.reason}) -> {winner.proposal}"
    elif held:
        text = f"policy: {held}; stays {baseline}"
    else:
        text = f"policy: no check wants a change; stays {baseline}"
    if clamped_from is not None:
        text += f", clamped to [{lo}, {hi}] -> {count}"
    return text
