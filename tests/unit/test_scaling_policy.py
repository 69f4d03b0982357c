"""The `policy` item: what parses, and the message for each kind of mistake."""

from __future__ import annotations

import pytest

from reconciler.scaling.policy import PolicyError, parse_policy
from tests.worlds import spec

GOOD = """
cooldown: 2m
evaluation_interval: 30s
checks:
  - name: mem
    metric: percentage-allocated_memory
    strategy: {name: target-value, target: 70}
  - metric: blocked_evaluations
"""


def test_a_full_policy_parses_with_defaults() -> None:
    p = parse_policy(GOOD)
    assert (p.cooldown, p.cooldown_on_scale_up, p.evaluation_interval) == (120.0, 120.0, 30.0)
    assert [c.name for c in p.checks] == ["mem", "check-1"]
    assert p.checks[0].strategy is not None and p.checks[0].strategy.options == {"target": 70.0}
    assert p.checks[1].strategy is None


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        parse_policy(text)
    return err.value.problems


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checks: [", "policy: not valid YAML"),
        ("- 1", "policy: must be a map with `checks`"),
        ("cooldown: 5m", "policy.checks: required"),
        (
            "checks: [{metric: cpu, strategy: {name: pass-through}}]",
            "policy.checks[0].metric: 'cpu' is not one of percentage-allocated_cpu",
        ),
        (
            "checks: [{metric: percentage-allocated_cpu,"
            " strategy: {name: target-value, target: high}}]",
            "policy.checks[0].strategy.target: 'high' is not a number",
        ),
        (
            "checks: [{metric: percentage-allocated_cpu, strategy: {name: target-value}}]",
            "policy.checks[0].strategy.target: required for target-value",
        ),
        (
            "checks: [{metric: percentage-allocated_cpu, strategy: {name: magic}}]",
            "policy.checks[0].strategy.name: 'magic' is not one of target-value",
        ),
        (
            "checks: [{metric: percentage-allocated_cpu, strategy: {name: threshold, delta: 1}}]",
            "policy.checks[0].strategy: needs lower_bound or upper_bound",
        ),
        (
            "checks: [{metric: percentage-allocated_cpu,"
            " strategy: {name: threshold, lower_bound: 70, delta: 1, value: 3}}]",
            "exactly one of delta, percentage or value; got 2",
        ),
        (
            "checks: [{metric: percentage-allocated_cpu,"
            " strategy: {name: threshold, lower_bound: 70, delta: 1, within_bounds_trigger: 5}}]",
            "within_bounds_trigger: 5 is not supported, only 1: each pass measures one data point"
            " from Nomad's allocations and points are not counted across passes (nomad-apm"
            " gives one point too, so the Autoscaler would never fire with 5); remove it or"
            " set it to 1",
        ),
        (
            "checks: [{metric: blocked_evaluations, strategy: {name: pass-through}}]",
            "a blocked_evaluations check takes no strategy",
        ),
        (
            "cooldwn: 5m\nchecks: [{metric: blocked_evaluations}]",
            "policy.cooldwn: unknown field; allowed: checks, cooldown",
        ),
        (
            "cooldown: soon\nchecks: [{metric: blocked_evaluations}]",
            "policy.cooldown: 'soon' is not a duration",
        ),
        (
            "checks: [{name: a, metric: blocked_evaluations},"
            " {name: a, metric: blocked_evaluations}]",
            "names must be unique; repeated: a",
        ),
    ],
)
def test_each_mistake_is_named(text: str, message: str) -> None:
    assert any(message in p for p in problems(text)), problems(text)


def test_every_problem_is_reported_at_once() -> None:
    found = problems("cooldown: soon\nchecks: [{metric: cpu}, {metric: percentage-allocated_cpu}]")
    assert len(found) == 3


def test_an_invalid_policy_is_an_invalid_spec_and_count_excludes_it() -> None:
    from reconciler.spec import SpecError

    with pytest.raises(SpecError, match=r"policy\.checks: required"):
        spec(policy="cooldown: 5m")
    with pytest.raises(SpecError, match="count: cannot be set together with policy"):
        spec(count=3, policy=GOOD)
    assert spec(policy=GOOD).policy is not None
