"""Pool spec parsing: defaults, and errors that name the item and what is allowed."""

from __future__ import annotations

import pytest

from reconciler.spec import SpecError, parse_pool_spec

VARS = {"cloud_init_vars": "servers: [10.0.0.2]"}


def problems(items: dict[str, str], pool: str = "web") -> list[str]:
    with pytest.raises(SpecError) as exc:
        parse_pool_spec(pool, {**VARS, **items})
    return exc.value.problems


def test_defaults() -> None:
    s = parse_pool_spec("web", {"min": "1", "max": "3", **VARS}, index=9)
    assert (s.index, s.min, s.max, s.count) == (9, 1, 3, None)
    assert (s.image, s.cpus, s.memory, s.disk) == ("24.04", 2, "2G", "10G")
    assert (s.node_class, s.datacenter, s.node_pool) == ("web", "dc1", "default")
    assert (s.drain_deadline, s.join_timeout, s.unhealthy_timeout) == (3600, 600, 300)
    assert (s.scale_in, str(s.max_surge), str(s.max_unavailable), str(s.max_unhealthy)) == (
        "least_busy",
        "1",
        "0",
        "40%",
    )
    assert s.node_purge and not s.paused and not s.drain_ignore_system_jobs


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ({"min": "2", "max": "1"}, "max: 1 is below min (2)"),
        (
            {"min": "1", "max": "3", "memory": "2 gigs"},
            "memory: '2 gigs' is not a size like 512M or 2G",
        ),
        ({"min": "1", "max": "3", "memory": "256M"}, "memory: '256M' is below the minimum 512M"),
        (
            {"min": "1", "max": "3", "drain_deadline": "soon"},
            "drain_deadline: 'soon' is not a duration",
        ),
        (
            {"min": "1", "max": "3", "scale_in": "random"},
            "scale_in: 'random' is not one of least_busy",
        ),
        ({"min": "1", "max": "3", "paused": "maybe"}, "paused: 'maybe' is not a boolean"),
        ({"min": "1", "max": "3", "max_surge": "1.5"}, "max_surge: '1.5' is not a count like 1"),
        ({"min": "x", "max": "3"}, "min: 'x' is not a whole number"),
        ({"max": "3"}, "min: required"),
        ({"min": "1", "max": "3", "mxa": "4"}, "mxa: unknown item; allowed: min, max"),
        (
            {"min": "1", "max": "3", "cloud_init_vars": "[1, 2]"},
            "cloud_init_vars: must be a YAML mapping",
        ),
        (
            {"min": "1", "max": "3", "cloud_init_vars": "pool: x"},
            "cloud_init_vars: pool are given by",
        ),
        (
            {"min": "1", "max": "3", "cloud_init": "#cloud-config\n{% if %}"},
            "cloud_init: template syntax error",
        ),
        ({"min": "1", "max": "3", "cloud_init_vars": "{}"}, "'servers' is undefined"),
        (
            {"min": "1", "max": "3", "cloud_init": "hello {{ 1 }}"},
            "must start with a '#cloud-config' line",
        ),
    ],
)
def test_each_problem_names_its_item(items: dict[str, str], expected: str) -> None:
    assert any(expected in p for p in problems(items)), problems(items)


def test_all_problems_are_reported_at_once() -> None:
    found = problems({"min": "5", "max": "2", "cpus": "0", "image": "", "mxa": "1"})
    assert len(found) >= 4


def test_bad_pool_names_are_refused() -> None:
    assert any("pool name" in p for p in problems({"min": "1", "max": "2"}, pool="Web_1"))


def test_count_is_clamped_and_says_so() -> None:
    s = parse_pool_spec("web", {"min": "2", "max": "4", "count": "10", **VARS})
    assert (s.count, s.count_clamped_from) == (4, 10)


def test_template_hash_ignores_sizing_and_follows_shape() -> None:
    base = {"min": "1", "max": "3", **VARS}
    h = parse_pool_spec("web", base).template_hash
    assert parse_pool_spec("web", {**base, "max": "9", "min": "2", "count": "3"}).template_hash == h
    assert (
        parse_pool_spec("web", {**base, "drain_deadline": "5m", "paused": "true"}).template_hash
        == h
    )
    for change in (
        {"image": "22.04"},
        {"cpus": "4"},
        {"memory": "4G"},
        {"disk": "20G"},
        {"node_class": "x"},
        {"datacenter": "dc2"},
        {"node_pool": "p"},
        {"cloud_init_vars": "servers: [10.0.0.9]"},
    ):
        assert parse_pool_spec("web", {**base, **change}).template_hash != h, change
