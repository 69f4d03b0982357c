"""Pool spec parsing: defaults, and errors that name the item and what is allowed."""

from __future__ import annotations

import pytest

from reconciler.render import default_template_text, render_cloud_init
from reconciler.spec import SpecError, needs_servers, parse_pool_spec, with_servers

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
        ({"min": "1", "max": "3", "memory": "256M"}, "memory: '256M' must be at least 512M"),
        ({"min": "1", "max": "3", "disk": "1023M"}, "disk: '1023M' must be at least 1G"),
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
        (
            {"min": "1", "max": "3", "cloud_init": "#cloud-config\nx: {{ nope }}"},
            "cloud_init: 'nope' is undefined; define it in cloud_init_vars",
        ),
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


CUSTOM = "#cloud-config\nrunserver: {{ s }}\n"


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("#cloud-config\nx: {{ 1/0 }}\n", "{}", "ZeroDivisionError: division by zero"),
        (
            "#cloud-config\nx: [{% for s in servers %}{{ s }}{% endfor %}]\n",
            "servers: 5",
            "TypeError: 'int' object is not iterable",
        ),
        ("#cloud-config\nx: {{ s.upper() }}\n", "s: 5", "'int object' has no attribute 'upper'"),
    ],
)
def test_python_errors_while_rendering_are_spec_problems(
    template: str, variables: str, expected: str
) -> None:
    # Before: the exception escaped parse_pool_spec and stopped the whole pass.
    found = problems({"min": "1", "max": "3", "cloud_init": template, "cloud_init_vars": variables})
    assert len(found) == 1 and found[0].startswith("cloud_init: ") and expected in found[0], found


def test_a_template_too_deeply_nested_to_compile_is_a_spec_problem() -> None:
    deep = "#cloud-config\nx: {{ " + "(" * 3000 + "1" + ")" * 3000 + " }}\n"
    found = problems({"min": "1", "max": "3", "cloud_init": deep})
    assert len(found) == 1, found
    assert found[0].startswith("cloud_init: the template cannot be compiled: RecursionError")


@pytest.mark.parametrize(
    ("item", "value", "expected"),
    [
        ("drain_deadline", "0", "drain_deadline: '0' must be at least 1s (Nomad reads 0 as no"),
        ("drain_deadline", "0s", "drain_deadline: '0s' must be at least 1s"),
        ("drain_deadline", "999ms", "drain_deadline: '999ms' must be at least 1s"),
        ("drain_deadline", "-5m", "drain_deadline: '-5m' is negative"),
        ("drain_deadline", "3000000h", "drain_deadline: '3000000h' is longer than the longest Go"),
        ("join_timeout", "0s", "join_timeout: '0s' must be at least 1m"),
        ("join_timeout", "59s", "join_timeout: '59s' must be at least 1m"),
        ("unhealthy_timeout", "0", "unhealthy_timeout: '0' must be at least 30s"),
        ("unhealthy_timeout", "29s", "unhealthy_timeout: '29s' must be at least 30s"),
    ],
)
def test_durations_below_their_floor_are_refused(item: str, value: str, expected: str) -> None:
    found = problems({"min": "1", "max": "3", item: value})
    assert any(p.startswith(expected) for p in found), found


def test_durations_at_their_floor_are_accepted() -> None:
    s = parse_pool_spec(
        "web",
        {
            "min": "1",
            "max": "3",
            "drain_deadline": "1s",
            "join_timeout": "1m",
            "unhealthy_timeout": "30s",
            **VARS,
        },
    )
    assert (s.drain_deadline, s.join_timeout, s.unhealthy_timeout) == (1, 60, 30)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ("servers: nomad.lab", "cloud_init_vars.servers: 'nomad.lab' must be a list"),
        ("servers: 5", "cloud_init_vars.servers: 5 must be a list"),
        ("servers: []", "cloud_init_vars.servers: is empty"),
        ("servers: ['']", "cloud_init_vars.servers: entry 1 ('') must be a host name"),
        ("servers: [a, {b: 1}]", "cloud_init_vars.servers: entry 2 ({'b': 1}) must be"),
        ("servers: [10]", "cloud_init_vars.servers: entry 1 (10) must be"),
        ("servers: ['nomad lab']", "cloud_init_vars.servers: entry 1 ('nomad lab') must be"),
        ("nomad_version: 1.10\nservers: [a]", "cloud_init_vars.nomad_version: 1.1 must be"),
        ("nomad_version: '1; reboot'\nservers: [a]", "cloud_init_vars.nomad_version:"),
        ("network_interface: ''\nservers: [a]", "cloud_init_vars.network_interface:"),
        ("servrs: [a]\nservers: [a]", "cloud_init_vars.servrs: not used by the shipped"),
    ],
)
def test_the_shipped_templates_variables_are_checked(variables: str, expected: str) -> None:
    found = problems({"min": "1", "max": "3", "cloud_init_vars": variables})
    assert any(p.startswith(expected) for p in found), found
    # The shipped template's text pasted into cloud_init is checked the same way.
    pasted = {"min": "1", "max": "3", "cloud_init": default_template_text()}
    assert any(p.startswith(expected) for p in problems({**pasted, "cloud_init_vars": variables}))


def test_the_shipped_templates_good_variables_pass() -> None:
    good = (
        "servers: [10.0.0.2, 'nomad.lab:4647']\nnomad_version: '1:1.9.3-1'\nnetwork_interface: eth0"
    )
    s = parse_pool_spec("web", {"min": "1", "max": "3", "cloud_init_vars": good})
    assert s.cloud_init_vars["servers"] == ["10.0.0.2", "nomad.lab:4647"]


def test_a_custom_template_chooses_its_own_variables() -> None:
    s = parse_pool_spec(
        "web", {"min": "1", "max": "3", "cloud_init": CUSTOM, "cloud_init_vars": "s: 5"}
    )
    assert dict(s.cloud_init_vars) == {"s": 5}


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ({"node_pool": "all"}, "node_pool: 'all' must be 1-128 letters, digits"),
        ({"node_pool": "gpu.pool"}, "node_pool: 'gpu.pool' must be"),
        ({"node_pool": "p" * 129}, "node_pool: "),
        ({"min": "²"}, "min: '²' is not a whole number"),
        ({"max_surge": "²"}, "max_surge: '²' is not a count like 1"),
        ({"cpus": "-1"}, "cpus: -1 is not within 1..64"),
        ({"disk": "512M"}, "disk: '512M' must be at least 1G"),
    ],
)
def test_edge_values_are_refused_clearly(items: dict[str, str], expected: str) -> None:
    found = problems({"min": "1", "max": "3", **items})
    assert any(p.startswith(expected) for p in found), found


def test_node_pool_takes_nomads_names() -> None:
    s = parse_pool_spec("web", {"min": "1", "max": "3", "node_pool": "gpu_pool-2", **VARS})
    assert s.node_pool == "gpu_pool-2"


def test_cloud_init_vars_that_expand_without_end_are_refused_quickly() -> None:
    # Nine levels of nine aliases: 9**9 values once expanded, all hashed and rendered.
    doc = "servers: [a]\nl0: &l0 [x, x, x, x, x, x, x, x, x]\n"
    for level in range(1, 9):
        doc += f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]\n"
    found = problems({"min": "1", "max": "3", "cloud_init": CUSTOM, "cloud_init_vars": doc})
    assert any(p.startswith("cloud_init_vars: holds more than 10000 values") for p in found)
    deep = "s: " + "[" * 5000 + "]" * 5000
    found = problems({"min": "1", "max": "3", "cloud_init": CUSTOM, "cloud_init_vars": deep})
    assert "cloud_init_vars: is nested too deeply to read" in found


def test_cloud_init_vars_of_exactly_10000_values_are_accepted() -> None:
    # The mapping, its list and the list's 9,998 entries: 10,000 values, the most allowed.
    # (A template that reads none of them: only the count is at stake.)
    template = "#cloud-config\nruncmd: []\n"

    def items(entries: int) -> dict[str, str]:
        listed = ", ".join(["1"] * entries)
        return {"min": "1", "max": "3", "cloud_init": template, "cloud_init_vars": f"s: [{listed}]"}

    assert len(parse_pool_spec("web", items(9998)).cloud_init_vars["s"]) == 9998
    assert problems(items(9999)) == [
        "cloud_init_vars: holds more than 10000 values once YAML aliases are expanded; "
        "a template needs far fewer"
    ]


def test_a_policy_nested_too_deeply_is_a_spec_problem() -> None:
    # Before: PyYAML's RecursionError escaped parse_pool_spec.
    found = problems({"min": "1", "max": "3", "policy": "checks: " + "[" * 5000 + "]" * 5000})
    assert found == ["policy: is nested too deeply to read"]


def test_a_pool_of_only_min_and_max_is_valid_its_servers_come_from_nomad() -> None:
    spec = parse_pool_spec("web", {"min": "2", "max": "4"})
    assert needs_servers(spec)
    with_peers = with_servers(spec, ["10.0.0.2:4647", "10.0.0.3:4647"])
    # Discovered servers are rendered, but they are not part of the instance's shape.
    assert with_peers.template_hash == spec.template_hash
    text = render_cloud_init(with_peers, "web-bcdfg-0")
    assert 'servers    = ["10.0.0.2:4647", "10.0.0.3:4647"]' in text
    explicit = parse_pool_spec("web", {"min": "2", "max": "4", **VARS})
    assert not needs_servers(explicit) and explicit.template_hash != spec.template_hash


def test_max_0_with_min_0_is_an_empty_pool() -> None:
    spec = parse_pool_spec("web", {"min": "0", "max": "0"})
    assert (spec.min, spec.max) == (0, 0)
    assert any("max: 0 is below min (1)" in p for p in problems({"min": "1", "max": "0"}))


def test_a_yaml_error_inside_an_item_gives_its_line_and_column() -> None:
    found = problems({"min": "1", "max": "3", "cloud_init_vars": "servers:\n  - a\n  b: [1"})
    assert any(
        p.startswith("cloud_init_vars: is not valid YAML: line 3, column 3: ") for p in found
    ), found
    policy = problems({"min": "1", "max": "3", "policy": "checks: [\n  {name: x"})
    assert any(p.startswith("policy: not valid YAML: line ") and "column" in p for p in policy)
