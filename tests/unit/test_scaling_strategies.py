"""The strategies on worked examples, following the Nomad Autoscaler's definitions."""

from __future__ import annotations

import pytest

from reconciler.scaling.strategies import fixed_value, pass_through, target_value, threshold


@pytest.mark.parametrize(
    ("current", "metric", "target", "expected"),
    [
        (2, 140.0, 70.0, 4),  # twice the target: twice the nodes
        (4, 35.0, 70.0, 2),  # half the target: half the nodes
        (3, 80.0, 70.0, 4),  # factor 1.143: ceil(3 * 1.143) = 4
        (10, 69.5, 70.0, None),  # factor 0.993: within the default threshold 0.01
        (0, 3.0, 0.0, 3),  # target 0 (a queue to empty): the factor is the metric; from 0
        (5, 0.0, 0.0, 0),  # target 0, metric 0: scale in to the factor
    ],
)
def test_target_value(current: int, metric: float, target: float, expected: int | None) -> None:
    assert target_value(current, metric, target).count == expected


def test_target_value_threshold_widens_the_dead_band() -> None:
    assert target_value(10, 75.0, 70.0, threshold=0.1).count is None  # factor 1.07
    assert target_value(10, 80.0, 70.0, threshold=0.1).count == 12  # factor 1.14


def test_target_value_from_zero_members_with_no_load_does_nothing() -> None:
    assert target_value(0, 0.0, 70.0).count is None


@pytest.mark.parametrize(
    ("metric", "kwargs", "expected"),
    [
        (85.0, {"lower_bound": 70, "delta": 2}, 6),
        (20.0, {"upper_bound": 30, "delta": -1}, 3),
        (50.0, {"lower_bound": 70, "delta": 2}, None),  # below the lower bound
        (70.0, {"lower_bound": 70, "upper_bound": 90, "delta": 1}, 5),  # lower bound included
        (90.0, {"lower_bound": 70, "upper_bound": 90, "delta": 1}, None),  # upper excluded
        (95.0, {"lower_bound": 90, "percentage": 50}, 6),  # ceil(4 * 1.5)
        (10.0, {"upper_bound": 20, "percentage": -30}, 3),  # ceil(4 * 0.7) = 3
        (99.0, {"lower_bound": 90, "value": 10}, 10),
        (5.0, {"upper_bound": 10, "delta": -9}, 0),  # never below 0
    ],
)
def test_threshold(metric: float, kwargs: dict[str, float], expected: int | None) -> None:
    assert threshold(4, metric, **kwargs).count == expected  # type: ignore[arg-type]


def test_fixed_value_and_pass_through() -> None:
    assert fixed_value(2, 99.0, 5).count == 5
    assert fixed_value(5, 0.0, 5).count is None
    assert pass_through(2, 6.2).count == 7
    assert pass_through(7, 6.2).count is None
