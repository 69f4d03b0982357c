"""From a policy and the pool's signals to one desired count, and why.

The rules, as the Nomad Autoscaler applies them to several checks:
* every strategy starts from the pool's current count, and each proposal's
  direction is judged against that same count (see ``decide``);
* scale up when any check wants more; the largest proposal wins;
* scale down only when every check with an opinion wants less; then the largest
  (least aggressive) proposal wins. A check on its target votes to stay (and so
  vetoes); one without data, or a blocked_evaluations check with nothing
  blocked, has no opinion;
* after a scaling decision the policy is in cooldown, and makes no decision in
  either direction: for ``cooldown_on_scale_up`` after a scale-up, for
  ``cooldown`` after a scale-down. Both count from the decision's time, read
  back from the status variable, so a restart does not reset them;
* except: a ``blocked_evaluations`` check wanting more ignores the cooldown.
  Work Nomad cannot place is the reason the pool exists, and waiting minutes
  for a metric to confirm it is what the Autoscaler gets wrong.

The result is clamped to [min, max].
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.scaling import strategies
from reconciler.scaling.policy import BLOCKED, Check, Policy
from reconciler.scaling.signals import Signals
from reconciler.units import plural


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
    """The desired count and why.

    ``reason`` is stored in the status variable on every pass, so it holds no
    time-varying text: the cooldown's countdown lives in ``cooldown_remaining``
    (seconds) and ``cooldown_until`` (when it ends, epoch seconds; None outside
    a cooldown), which ``plan`` shows and status does not store.
    """

    count: int
    reason: str
    checks: tuple[CheckResult, ...]
    winner: str | None = None
    baseline: int = 0
    clamped_from: int | None = None
    cooldown_remaining: float = 0.0
    scaled: str | None = None  # "up" | "down" when this decision moved the count
    cooldown_until: float | None = None


@dataclass(frozen=True)
class Cooldown:
    """The cooldown in force after the last scaling decision."""

    option: str  # the policy field that set its length
    length: float
    until: float
    after: LastScale

    def remaining(self, now: float) -> float:
        return max(0.0, self.until - now)


def cooldown_after(policy: Policy, last: LastScale | None, now: float) -> Cooldown | None:
    """The cooldown in force at ``now``, or None.

    As the Autoscaler: its length is set by the direction of the last scaling
    action (``cooldown_on_scale_up`` after a scale-up, ``cooldown`` otherwise),
    not by the direction a check wants now.
    """
    if last is None:
        return None
    if last.direction == "up":
        option, length = "cooldown_on_scale_up", policy.cooldown_on_scale_up
    else:
        option, length = "cooldown", policy.cooldown
    until = last.at + length
    return Cooldown(option, length, until, last) if now < until else None


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
    """The desired count for a pool of ``members`` serving members.

    The pool's current count (``baseline``) is the last decided count, or before
    any decision its serving members, clamped to [min, max]. It is the
    Autoscaler's "current count" of a target: what the pool is being driven to,
    members still booting included (capacity on its way). Strategies start from
    it, proposals are judged up or down against it, and it is what the pool
    stays at when no check wins. Not the ready nodes: a scale-up rule applied
    to 3 ready nodes of a pool decided at 5 would propose 4 and shrink it.
    """
    baseline = _clamp(last.count if last is not None else members, minimum, maximum)
    results = tuple(_run_check(c, signals, baseline) for c in policy.checks)
    cooldown = cooldown_after(policy, last, now)
    winner = _winner(results, in_cooldown=cooldown is not None)

    wanted = winner.proposal if winner is not None and winner.proposal is not None else baseline
    count = _clamp(wanted, minimum, maximum)
    clamped_from = wanted if count != wanted else None
    scaled = None
    if winner is not None and count != baseline:
        scaled = "up" if count > baseline else "down"
    return Decision(
        count=count,
        reason=_reason(winner, cooldown, baseline, count, clamped_from, minimum, maximum),
        checks=results,
        winner=winner.name if winner is not None else None,
        baseline=baseline,
        clamped_from=clamped_from,
        cooldown_remaining=cooldown.remaining(now) if cooldown is not None else 0.0,
        scaled=scaled,
        cooldown_until=cooldown.until if cooldown is not None else None,
    )


def _winner(results: tuple[CheckResult, ...], *, in_cooldown: bool) -> CheckResult | None:
    """The check whose proposal is applied, or None for no change."""
    ups = [r for r in results if r.direction == "up"]
    if in_cooldown:
        # No decision inside a cooldown, but for blocked work (the documented exception).
        ups = [r for r in ups if r.metric == BLOCKED]
    if ups:
        return max(ups, key=lambda r: (r.proposal or 0, r.name))
    opinions = [r for r in results if r.opinion]
    if not in_cooldown and opinions and all(r.direction == "down" for r in opinions):
        return max(opinions, key=lambda r: (r.proposal or 0, r.name))  # least aggressive
    return None


def _run_check(check: Check, signals: Signals, baseline: int) -> CheckResult:
    value = signals.value(check.metric)
    if check.metric == BLOCKED:
        return _blocked_check(check, signals, value, baseline)
    if value is None:
        return CheckResult(check.name, check.metric, None, None, "none", "no ready node: no data")
    assert check.strategy is not None  # parse_policy gives every metric check a strategy
    p = strategies.run(check.strategy, baseline, value)
    # A strategy that wants no change has an opinion all the same: stay (it vetoes a
    # scale-down that other checks want).
    return CheckResult(
        check.name, check.metric, value, p.count, p.direction(baseline), p.reason, True
    )


def _blocked_check(
    check: Check, signals: Signals, value: float | None, baseline: int
) -> CheckResult:
    """Blocked work needs the ready nodes plus the nodes to place it.

    Members still booting count towards that: Nomad places the blocked work on
    them once they join, so a count that already covers the need stays (and
    vetoes a scale-down: there is work waiting). Never a vote to shrink.
    """
    if not signals.blocked_nodes:
        why = "nothing blocked"
        if signals.unplaceable:
            why += f" that one instance could hold ({signals.unplaceable} placements too big)"
        return CheckResult(check.name, check.metric, value, None, "none", why)
    needed = signals.ready_nodes + signals.blocked_nodes
    why = (
        f"{plural(signals.blocked_placements, 'blocked placement')} need "
        f"{plural(signals.blocked_nodes, 'more node')} beside {signals.ready_nodes} ready"
    )
    if needed <= baseline:
        why += f"; the pool's count {baseline} covers them"
        return CheckResult(check.name, check.metric, value, baseline, "none", why, True)
    return CheckResult(check.name, check.metric, value, needed, "up", why, True)


def _clamp(n: int, lo: int, hi: int) -> int:
    return min(max(n, lo), hi)


def _seconds(s: float) -> str:
    return f"{s:g}s"


def _reason(
    winner: CheckResult | None,
    cooldown: Cooldown | None,
    baseline: int,
    count: int,
    clamped_from: int | None,
    lo: int,
    hi: int,
) -> str:
    # Stored in status every pass: nothing here may change while the world does not.
    if winner is not None:
        text = f"policy: check {winner.name} ({winner.reason}) -> {winner.proposal}"
    elif cooldown is not None:
        text = (
            f"policy: in {cooldown.option} ({_seconds(cooldown.length)}) after the "
            f"scale-{cooldown.after.direction} to {cooldown.after.count}; stays {baseline}"
        )
    else:
        text = f"policy: no check wants a change; stays {baseline}"
    if clamped_from is not None:
        text += f", clamped to [{lo}, {hi}] -> {count}"
    return text
