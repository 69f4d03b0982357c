"""The `policy` item: checks (metric + strategy), cooldowns and evaluation interval.

Names follow the Nomad Autoscaler's cluster policies so a migrated policy reads
the same. Every problem names its field path (``policy.checks[1].strategy.target``)
and says what is allowed; all problems are reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.units import parse_duration, yaml_problem

METRICS = ("percentage-allocated_cpu", "percentage-allocated_memory", "blocked_evaluations")
STRATEGIES = ("target-value", "threshold", "fixed-value", "pass-through")
BLOCKED = "blocked_evaluations"

# Allowed options per strategy: name -> (kind, required).
_OPTIONS: dict[str, dict[str, tuple[str, bool]]] = {
    "target-value": {"target": ("number", True), "threshold": ("number", False)},
    "threshold": {
        "lower_bound": ("number", False),
        "upper_bound": ("number", False),
        "delta": ("int", False),
        "percentage": ("number", False),
        "value": ("count", False),
        "within_bounds_trigger": ("count", False),
    },
    "fixed-value": {"value": ("count", True)},
    "pass-through": {},
}


class PolicyError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Strategy:
    name: str
    options: Mapping[str, float]

    def option(self, key: str, default: float | None = None) -> float | None:
        return self.options.get(key, default)


@dataclass(frozen=True)
class Check:
    name: str
    metric: str
    strategy: Strategy | None  # None only for blocked_evaluations (it needs none)


@dataclass(frozen=True)
class Policy:
    checks: tuple[Check, ...]
    cooldown: float = 300.0
    cooldown_on_scale_up: float = 300.0
    evaluation_interval: float = 10.0


def parse_policy(text: str) -> Policy:
    """Parse the YAML of the `policy` item; PolicyError lists every problem."""
    try:
        raw = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise PolicyError([f"policy: not valid YAML: {yaml_problem(exc)}"]) from None
    if not isinstance(raw, dict):
        raise PolicyError(["policy: must be a map with `checks` (and cooldown, ...)"])
    problems: list[str] = []
    _unknown(
        "policy",
        raw,
        ("checks", "cooldown", "cooldown_on_scale_up", "evaluation_interval"),
        problems,
    )
    cooldown = _duration("policy.cooldown", raw.get("cooldown"), 300.0, problems)
    up = _duration(
        "policy.cooldown_on_scale_up", raw.get("cooldown_on_scale_up"), cooldown, problems
    )
    interval = _duration(
        "policy.evaluation_interval", raw.get("evaluation_interval"), 10.0, problems
    )
    checks_raw = raw.get("checks")
    checks: list[Check] = []
    if not isinstance(checks_raw, list) or not checks_raw:
        problems.append("policy.checks: required, a list of checks (metric and strategy)")
    else:
        for i, c in enumerate(checks_raw):
            check = _check(f"policy.checks[{i}]", c, i, problems)
            if check is not None:
                checks.append(check)
        names = [c.name for c in checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"policy.checks: names must be unique; repeated: {', '.join(dupes)}")
    if interval is not None and interval <= 0:
        problems.append("policy.evaluation_interval: must be above 0s")
    if problems:
        raise PolicyError(problems)
    return Policy(tuple(checks), cooldown, up, interval)


def _unknown(
    path: str, raw: Mapping[str, Any], allowed: tuple[str, ...], problems: list[str]
) -> None:
    for key in sorted(set(map(str, raw)) - set(allowed)):
        problems.append(f"{path}.{key}: unknown field; allowed: {', '.join(allowed)}")


def _duration(path: str, value: Any, default: float, problems: list[str]) -> float:
    if value is None:
        return default
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        problems.append(f"{path}: {exc}")
        return default


def _check(path: str, raw: Any, i: int, problems: list[str]) -> Check | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a map with `metric` and `strategy`")
        return None
    _unknown(path, raw, ("name", "metric", "strategy"), problems)
    name = str(raw.get("name") or f"check-{i}")
    metric = raw.get("metric")
    if metric is None:
        problems.append(f"{path}.metric: required, one of {', '.join(METRICS)}")
        return None
    if metric not in METRICS:
        problems.append(f"{path}.metric: {metric!r} is not one of {', '.join(METRICS)}")
        return None
    strategy_raw = raw.get("strategy")
    if metric == BLOCKED:
        # Its proposal is fixed (enough nodes for what is blocked): no strategy to choose.
        if strategy_raw is not None:
            problems.append(
                f"{path}.strategy: a {BLOCKED} check takes no strategy; it asks for enough "
                "nodes to place what is blocked"
            )
        return Check(name, metric, None)
    strategy = _strategy(f"{path}.strategy", strategy_raw, problems)
    return Check(name, metric, strategy) if strategy else None


def _strategy(path: str, raw: Any, problems: list[str]) -> Strategy | None:
    if not isinstance(raw, dict) or "name" not in raw:
        problems.append(
            f"{path}: required, a map with `name` ({', '.join(STRATEGIES)}) and options"
        )
        return None
    name = raw["name"]
    if name not in _OPTIONS:
        problems.append(f"{path}.name: {name!r} is not one of {', '.join(STRATEGIES)}")
        return None
    allowed = _OPTIONS[name]
    _unknown(path, raw, ("name", *allowed), problems)
    options: dict[str, float] = {}
    for key, (kind, required) in allowed.items():
        value = raw.get(key)
        if value is None:
            if required:
                problems.append(f"{path}.{key}: required for {name}")
            continue
        parsed = _number(f"{path}.{key}", value, kind, problems)
        if parsed is not None:
            options[key] = parsed
    before = len(problems)
    if name == "threshold":
        _threshold_rules(path, options, problems)
    elif name == "target-value" and options.get("threshold", 0.01) < 0:
        problems.append(f"{path}.threshold: must be 0 or more")
    return Strategy(name, options) if len(problems) == before else None


def _number(path: str, value: Any, kind: str, problems: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.append(f"{path}: {value!r} is not a number")
        return None
    try:
        number = float(value)
    except ValueError:
        problems.append(f"{path}: {value!r} is not a number")
        return None
    if kind in ("int", "count") and number != int(number):
        problems.append(f"{path}: {value!r} is not a whole number")
        return None
    if kind == "count" and number < 0:
        problems.append(f"{path}: {value!r} is negative")
        return None
    return number


def _threshold_rules(path: str, options: Mapping[str, float], problems: list[str]) -> None:
    if "lower_bound" not in options and "upper_bound" not in options:
        problems.append(f"{path}: needs lower_bound or upper_bound (or both)")
    lo, hi = options.get("lower_bound"), options.get("upper_bound")
    if lo is not None and hi is not None and lo >= hi:
        problems.append(f"{path}: lower_bound ({lo:g}) must be below upper_bound ({hi:g})")
    actions = [k for k in ("delta", "percentage", "value") if k in options]
    if len(actions) != 1:
        problems.append(f"{path}: exactly one of delta, percentage or value; got {len(actions)}")
    trigger = options.get("within_bounds_trigger", 1)
    if trigger != 1:
        # The Autoscaler counts in-bounds points within one query's time series. Nomad's
        # allocation metrics are one value per evaluation (as nomad-apm gives them), and
        # points are not counted across passes: the count would have to be written to
        # status every pass (or be lost on a restart), and passes are not evenly spaced,
        # so N passes would not be a fixed window.
        problems.append(
            f"{path}.within_bounds_trigger: {trigger:g} is not supported, only 1: each pass "
            "measures one data point from Nomad's allocations and points are not counted "
            "across passes (nomad-apm gives one point too, so the Autoscaler would never "
            f"fire with {trigger:g}); remove it or set it to 1, and use cooldown to space "
            "actions out"
        )
