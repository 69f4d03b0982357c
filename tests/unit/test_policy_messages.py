"""The `policy` item's problems, word for word, and its defaults.

A person fixing a policy reads these messages in `reconciler spec validate` and in
the pool's status: each names the field and what is allowed. Pinned exactly,
through ``parse_policy``.
"""

from __future__ import annotations

import pytest

from reconciler.scaling.policy import PolicyError, parse_policy

CPU = "metric: percentage-allocated_cpu"
METRICS = "percentage-allocated_cpu, percentage-allocated_memory, blocked_evaluations"
STRATEGIES = "target-value, threshold, fixed-value, pass-through"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        parse_policy(text)
    assert str(err.value) == "; ".join(err.value.problems)
    return err.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["policy: must be a map with `checks` (and cooldown, ...)"]),
        ("   ", ["policy: must be a map with `checks` (and cooldown, ...)"]),
        ("\n\t\n", ["policy: must be a map with `checks` (and cooldown, ...)"]),  # blank, by tab
        ("[1]", ["policy: must be a map with `checks` (and cooldown, ...)"]),
        ("checks: []", ["policy.checks: required, a list of checks (metric and strategy)"]),
        ("checks: {a: 1}", ["policy.checks: required, a list of checks (metric and strategy)"]),
        ("checks: [7]", ["policy.checks[0]: must be a map with `metric` and `strategy`"]),
        ("checks: [{}]", [f"policy.checks[0].metric: required, one of {METRICS}"]),
        (
            "checks: [{metric: cpu}]",
            [f"policy.checks[0].metric: 'cpu' is not one of {METRICS}"],
        ),
        (
            "checks: [{metric: blocked_evaluations, strategy: {name: pass-through}}]",
            [
                "policy.checks[0].strategy: a blocked_evaluations check takes no strategy; "
                "it asks for enough nodes to place what is blocked"
            ],
        ),
        (
            "checks: [{metric: blocked_evaluations, when: now}]",
            ["policy.checks[0].when: unknown field; allowed: name, metric, strategy"],
        ),
        (
            f"checks: [{{{CPU}}}]",
            [f"policy.checks[0].strategy: required, a map with `name` ({STRATEGIES}) and options"],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: magic}}}}]",
            [f"policy.checks[0].strategy.name: 'magic' is not one of {STRATEGIES}"],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: pass-through, target: 1}}}}]",
            ["policy.checks[0].strategy.target: unknown field; allowed: name"],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: target-value, target: 50, threshold: -1}}}}]",
            ["policy.checks[0].strategy.threshold: must be 0 or more"],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: target-value, target: true}}}}]",
            ["policy.checks[0].strategy.target: True is not a number"],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: target-value, target: [1]}}}}]",
            ["policy.checks[0].strategy.target: [1] is not a number"],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: threshold, upper_bound: 1, delta: 1.5}}}}]",
            [
                "policy.checks[0].strategy.delta: 1.5 is not a whole number",
                "policy.checks[0].strategy: exactly one of delta, percentage or value; got 0",
            ],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: fixed-value, value: 2.5}}}}]",
            ["policy.checks[0].strategy.value: 2.5 is not a whole number"],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: fixed-value, value: -1}}}}]",
            ["policy.checks[0].strategy.value: -1 is negative"],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: threshold, lower_bound: 5, upper_bound: 2,"
            " delta: 1}}]",
            ["policy.checks[0].strategy: lower_bound (5) must be below upper_bound (2)"],
        ),
        (
            "evaluation_interval: 0s\nchecks: [{metric: blocked_evaluations}]",
            ["policy.evaluation_interval: must be above 0s"],
        ),
        (
            "cooldown_on_scale_up: soon\nchecks: [{metric: blocked_evaluations}]",
            [
                "policy.cooldown_on_scale_up: 'soon' is not a duration like 90s, 5m or 1h30m",
            ],
        ),
        (
            "evaluation_interval: often\nchecks: [{metric: blocked_evaluations}]",
            ["policy.evaluation_interval: 'often' is not a duration like 90s, 5m or 1h30m"],
        ),
        (
            "checks: [{name: a, metric: blocked_evaluations}, {name: b, metric:"
            " blocked_evaluations}, {name: a, metric: blocked_evaluations},"
            " {name: b, metric: blocked_evaluations}]",
            ["policy.checks: names must be unique; repeated: a, b"],
        ),
        (
            f"checks: [{{{CPU}, strategy: {{name: threshold, lower_bound: 50, delta: 1,"
            " within_bounds_trigger: 3}}]",
            [
                "policy.checks[0].strategy.within_bounds_trigger: 3 is not supported, only 1:"
                " each pass measures one data point from Nomad's allocations and points are not"
                " counted across passes (nomad-apm gives one point too, so the Autoscaler would"
                " never fire with 3); remove it or set it to 1, and use cooldown to space"
                " actions out"
            ],
        ),
    ],
)
def test_each_problem_word_for_word(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


@pytest.mark.parametrize(
    "broken",
    [
        "{name: a, metric: percentage-allocated_cpu, strategy: {name: magic}}",
        "{name: a, metric: percentage-allocated_cpu, strategy: {name: threshold, delta: 1}}",
    ],
)
def test_a_broken_check_reports_its_own_problem_not_a_repeated_name(broken: str) -> None:
    """A repeated name is judged among the checks that parsed: a broken one is reported once."""
    found = problems(f"checks: [{broken}, {{name: a, metric: blocked_evaluations}}]")
    assert len(found) == 1 and found[0].startswith("policy.checks[0].strategy"), found
    assert not any("names must be unique" in p for p in found)


def test_invalid_yaml_names_the_first_line_of_the_parser_error() -> None:
    [problem] = problems("checks: [")
    assert problem.startswith("policy: not valid YAML: ")
    assert "\n" not in problem and len(problem) > len("policy: not valid YAML: ")


def test_defaults_and_the_scale_up_cooldown_following_the_cooldown() -> None:
    p = parse_policy("checks: [{metric: blocked_evaluations}]")
    assert (p.cooldown, p.cooldown_on_scale_up, p.evaluation_interval) == (300.0, 300.0, 10.0)
    assert p.checks[0].name == "check-0" and p.checks[0].strategy is None
    p = parse_policy("cooldown: 2m\nchecks: [{metric: blocked_evaluations}]")
    assert (p.cooldown, p.cooldown_on_scale_up) == (120.0, 120.0)
    p = parse_policy(
        "cooldown: 2m\ncooldown_on_scale_up: 30s\nevaluation_interval: 1s\n"
        "checks: [{metric: blocked_evaluations}]"
    )
    assert (p.cooldown, p.cooldown_on_scale_up, p.evaluation_interval) == (120.0, 30.0, 1.0)


def test_options_are_kept_as_numbers() -> None:
    p = parse_policy(
        "checks: [{name: c, metric: percentage-allocated_cpu, strategy: {name: threshold,"
        " lower_bound: '10', upper_bound: 20.5, delta: -2, within_bounds_trigger: 1}}]"
    )
    strategy = p.checks[0].strategy
    assert strategy is not None and strategy.name == "threshold"
    assert dict(strategy.options) == {
        "lower_bound": 10.0,
        "upper_bound": 20.5,
        "delta": -2.0,
        "within_bounds_trigger": 1.0,
    }
    assert strategy.option("delta") == -2.0 and strategy.option("value", 7.0) == 7.0
    zero = parse_policy(
        "checks: [{metric: percentage-allocated_cpu,"
        " strategy: {name: target-value, target: 0, threshold: 0}}]"
    )
    assert zero.checks[0].strategy is not None
    assert dict(zero.checks[0].strategy.options) == {"target": 0.0, "threshold": 0.0}


def test_a_check_with_a_bad_strategy_is_left_out_but_the_others_are_judged() -> None:
    found = problems(
        f"checks: [{{{CPU}, strategy: {{name: fixed-value}}}}, {{metric: nope}},"
        " {metric: blocked_evaluations}]"
    )
    assert found == [
        "policy.checks[0].strategy.value: required for fixed-value",
        f"policy.checks[1].metric: 'nope' is not one of {METRICS}",
    ]
