"""A pool spec's problems word for word, its defaults, and what its template hash covers.

`reconciler spec validate` and the pool's status show these messages to the person
fixing the spec: each names the item, what is wrong and what is allowed. Pinned
exactly, through ``parse_pool_spec``.
"""

from __future__ import annotations

import pytest

from reconciler.plan.scale_in import STRATEGIES
from reconciler.spec import ITEM_NAMES, SpecError, parse_pool_spec
from reconciler.units import CountOrPercent

BASE = {"min": "1", "max": "3", "cloud_init_vars": "servers: [10.0.0.2]"}


def problems(items: dict[str, str], pool: str = "web") -> list[str]:
    with pytest.raises(SpecError) as err:
        parse_pool_spec(pool, items, 1)
    assert err.value.pool == pool
    assert str(err.value) == f"pool {pool}: invalid spec: " + "; ".join(err.value.problems)
    return err.value.problems


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"min": "x"}, ["min: 'x' is not a whole number"]),
        ({"min": "-1"}, ["min: -1 is not within 0..10000"]),
        ({"min": "X1"}, ["min: 'X1' is not a whole number"]),
        ({"min": "--1"}, ["min: '--1' is not a whole number"]),
        # max=0 is a valid empty pool only with min=0 (the base spec has min=1).
        ({"max": "0"}, ["max: 0 is below min (1)"]),
        ({"max": "10001"}, ["max: 10001 is not within 0..10000"]),
        ({"min": "4"}, ["max: 3 is below min (4)"]),
        ({"count": "1.5"}, ["count: '1.5' is not a whole number"]),
        ({"count": "1000001"}, ["count: 1000001 is not within 0..1000000"]),
        # A wrong min is read as 0: no second problem about max being below it.
        ({"min": "x", "max": "0"}, ["min: 'x' is not a whole number"]),
        (
            {"cloud_init_vars": "servers: [a]\npool: y\nhostname: x"},
            ["cloud_init_vars: hostname, pool are given by the reconciler and cannot be set"],
        ),
        # The template is rendered only for a spec without other problems: a render
        # with the wrong values' defaults would report what is not wrong.
        (
            {"cpus": "0", "cloud_init": "#cloud-config\nx: {{ nope }}\n"},
            ["cpus: 0 is not within 1..64"],
        ),
        ({"cpus": "0"}, ["cpus: 0 is not within 1..64"]),
        ({"cpus": "65"}, ["cpus: 65 is not within 1..64"]),
        (
            {"image": "my image"},
            ["image: 'my image' must be a non-empty name without spaces or quotes"],
        ),
        ({"image": 'a"b'}, ["image: 'a\"b' must be a non-empty name without spaces or quotes"]),
        ({"image": "  "}, ["image: '  ' must be a non-empty name without spaces or quotes"]),
        (
            {"node_class": "a b"},
            ["node_class: 'a b' must be a non-empty name without spaces or quotes"],
        ),
        ({"datacenter": ""}, ["datacenter: '' must be a non-empty name without spaces or quotes"]),
        (
            {"node_pool": "all"},
            [
                "node_pool: 'all' must be 1-128 letters, digits, '-' or '_', and not 'all' "
                "(Nomad refuses to start a client in any other node pool)"
            ],
        ),
        (
            {"node_pool": "a.b"},
            [
                "node_pool: 'a.b' must be 1-128 letters, digits, '-' or '_', and not 'all' "
                "(Nomad refuses to start a client in any other node pool)"
            ],
        ),
        (
            {"memory": "511M"},
            [
                "memory: '511M' must be at least 512M "
                "(the smallest VM an Ubuntu Nomad client runs in)"
            ],
        ),
        (
            {"disk": "1023M"},
            ["disk: '1023M' must be at least 1G (the smallest VM an Ubuntu Nomad client runs in)"],
        ),
        (
            {"drain_deadline": "0s"},
            ["drain_deadline: '0s' must be at least 1s (Nomad reads 0 as no deadline)"],
        ),
        (
            {"join_timeout": "59s"},
            [
                "join_timeout: '59s' must be at least 1m (a VM needs longer to boot and join; "
                "every new one would be replaced)"
            ],
        ),
        (
            {"unhealthy_timeout": "29s"},
            [
                "unhealthy_timeout: '29s' must be at least 30s (shorter would replace members "
                "over a missed heartbeat or a reboot)"
            ],
        ),
        ({"scale_in": "random"}, [f"scale_in: 'random' is not one of {', '.join(STRATEGIES)}"]),
        (
            {"mxa": "3"},
            [f"mxa: unknown item; allowed: {', '.join(ITEM_NAMES)}"],
        ),
        (
            {"cloud_init_vars": "servers: [a]\nhostname: x"},
            ["cloud_init_vars: hostname are given by the reconciler and cannot be set"],
        ),
        (
            {"count": "2", "policy": "checks: [{metric: blocked_evaluations}]"},
            [
                "count: cannot be set together with policy (the policy decides the count "
                "between min and max); remove one of them"
            ],
        ),
        (
            {"cloud_init_vars": "[1, 2]"},
            [
                "cloud_init_vars: must be a YAML mapping with string keys, "
                "e.g. 'servers: [10.0.0.2]'"
            ],
        ),
        (
            {"cloud_init_vars": "{servers: [a], 2: b}"},
            [
                "cloud_init_vars: must be a YAML mapping with string keys, "
                "e.g. 'servers: [10.0.0.2]'"
            ],
        ),
        (
            {"cloud_init_vars": "servers: ["},
            [
                "cloud_init_vars: is not valid YAML: line 1, column 11: "
                "expected the node content, but found '<stream end>'"
            ],
        ),
        (
            {"hosts": ""},
            ["hosts: is empty; give host names or globs, comma-separated (default: *)"],
        ),
        (
            {"hosts": " , "},
            ["hosts: is empty; give host names or globs, comma-separated (default: *)"],
        ),
        (
            {"hosts": "Big1, rack_1, ok"},
            [
                "hosts: 'Big1', 'rack_1': a host name or a glob of lowercase letters, "
                "digits and * ? [ ] only"
            ],
        ),
    ],
)
def test_each_problem_word_for_word(changes: dict[str, str], expected: list[str]) -> None:
    assert problems({**BASE, **changes}) == expected


def test_missing_min_and_max_are_each_named() -> None:
    assert problems({"cloud_init_vars": "servers: [a]"}) == [
        "min: required; set it with `nomad var put ... min=N`",
        "max: required; set it with `nomad var put ... max=N`",
    ]


def test_a_missing_min_with_max_0_is_one_problem() -> None:
    assert problems({"max": "0"}) == ["min: required; set it with `nomad var put ... min=N`"]


def test_a_custom_template_gets_no_sample_servers() -> None:
    # Only the shipped template takes its servers from Nomad; a custom one that reads
    # `servers` must define it, and is told so before any VM is launched.
    assert problems(
        {"min": "1", "max": "3", "cloud_init": "#cloud-config\nx: {{ servers }}\n"}
    ) == ["cloud_init: 'servers' is undefined; define it in cloud_init_vars"]


def test_the_spec_is_checked_by_rendering_its_first_instance() -> None:
    # The render check sees what instance <pool>-<hash>-0 would get (and fails otherwise).
    first_only = (
        "#cloud-config\n"
        "{% if instance != pool ~ '-' ~ template_hash ~ '-0' %}{{ 1 / 0 }}{% endif %}"
        "hostname: {{ instance }}\n"
    )
    spec = parse_pool_spec("web", {"min": "1", "max": "3", "cloud_init": first_only})
    assert spec.cloud_init == first_only


def test_a_bad_pool_name_is_named() -> None:
    assert problems(BASE, pool="Web") == [
        "pool name 'Web': must be lower-case letters, digits and dashes, starting with a "
        "letter, at most 42 characters (it prefixes instance names)"
    ]


def test_an_item_that_is_not_a_string_is_named() -> None:
    assert problems({**BASE, "cpus": 2}) == [  # type: ignore[dict-item]
        "cpus: 2 is not a string (Nomad variable items are strings)"
    ]


def test_every_default() -> None:
    s = parse_pool_spec("web", {"min": "0", "max": "1", "cloud_init_vars": "servers: [a]"}, 7)
    assert (s.pool, s.index, s.min, s.max, s.count, s.count_clamped_from) == (
        "web",
        7,
        0,
        1,
        None,
        None,
    )
    assert (s.image, s.cpus, s.memory, s.disk) == ("24.04", 2, "2G", "10G")
    assert (s.node_class, s.datacenter, s.node_pool) == ("web", "dc1", "default")
    assert s.cloud_init is None
    assert dict(s.cloud_init_vars) == {"servers": ["a"]}
    assert (s.drain_deadline, s.drain_ignore_system_jobs, s.node_purge) == (3600.0, False, True)
    assert s.scale_in == "least_busy"
    assert s.max_surge == CountOrPercent(1)
    assert s.max_unavailable == CountOrPercent(0)
    assert (s.join_timeout, s.unhealthy_timeout) == (600.0, 300.0)
    assert s.max_unhealthy == CountOrPercent(40, True)
    assert s.paused is False and s.policy is None
    assert (s.hosts, s.placement) == (("*",), "spread")
    assert parse_pool_spec("web", BASE).index == 0


def test_values_given_are_kept() -> None:
    s = parse_pool_spec(
        "web",
        {
            **BASE,
            "count": " 9 ",
            "image": " jammy ",
            "cpus": "4",
            "memory": "4G",
            "disk": "20G",
            "node_class": "big",
            "datacenter": "lab",
            "node_pool": "edge_1",
            "drain_deadline": "15m",
            "drain_ignore_system_jobs": "true",
            "node_purge": "false",
            "scale_in": " newest ",
            "max_surge": "25%",
            "max_unavailable": "1",
            "join_timeout": "1m",
            "unhealthy_timeout": "30s",
            "max_unhealthy": "2",
            "paused": "true",
            "hosts": " big1, ,rack1* ",
            "placement": " pack ",
        },
        1,
    )
    assert (s.hosts, s.placement) == (("big1", "rack1*"), "pack")
    assert (s.count, s.count_clamped_from) == (3, 9)
    assert (s.image, s.cpus, s.memory, s.disk) == ("jammy", 4, "4G", "20G")
    assert (s.node_class, s.datacenter, s.node_pool) == ("big", "lab", "edge_1")
    assert (s.drain_deadline, s.drain_ignore_system_jobs, s.node_purge) == (900.0, True, False)
    assert s.scale_in == "newest"
    assert (s.max_surge, s.max_unavailable) == (CountOrPercent(25, True), CountOrPercent(1))
    assert (s.join_timeout, s.unhealthy_timeout, s.max_unhealthy) == (60.0, 30.0, CountOrPercent(2))
    assert s.paused is True
    below = parse_pool_spec("web", {**BASE, "min": "2", "count": "0"}, 1)
    assert (below.count, below.count_clamped_from) == (2, 0)
    # At min or max a count is not clamped (status reports a clamped one).
    for edge in ("1", "3"):
        at = parse_pool_spec("web", {**BASE, "count": edge}, 1)
        assert (at.count, at.count_clamped_from) == (int(edge), None)
    far = parse_pool_spec("web", {**BASE, "count": "1000000"}, 1)
    assert (far.count, far.count_clamped_from) == (3, 1000000)


def test_sizes_at_their_floor_are_accepted() -> None:
    s = parse_pool_spec("web", {**BASE, "memory": "512M", "disk": "1G"}, 1)
    assert (s.memory, s.disk) == ("512M", "1G")


def test_the_template_hash_covers_what_shapes_an_instance_and_only_that() -> None:
    base = parse_pool_spec("web", BASE, 1).template_hash
    for item, value in (
        ("image", "jammy"),
        ("cpus", "3"),
        ("memory", "3G"),
        ("disk", "11G"),
        ("node_class", "other"),
        ("datacenter", "dc9"),
        ("node_pool", "edge"),
        ("cloud_init_vars", "servers: [10.0.0.3]"),
    ):
        changed = parse_pool_spec("web", {**BASE, item: value}, 1).template_hash
        assert changed != base, item
    for item, value in (
        ("min", "0"),
        ("max", "9"),
        ("count", "2"),
        ("drain_deadline", "5m"),
        ("scale_in", "oldest"),
        ("max_surge", "2"),
        ("paused", "true"),
    ):
        same = parse_pool_spec("web", {**BASE, item: value}, 1).template_hash
        assert same == base, item


SERVERS_EXAMPLE = "e.g. 'servers: [10.0.0.2, nomad.lab:4647]'"
BAD_SERVER = (
    "must be a host name or address without spaces, optionally with :port, "
    "e.g. 10.0.0.2 or nomad.lab:4647 (quote it if YAML reads it as a number)"
)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            "servrs: [a]\nservers: [a]",
            [
                "cloud_init_vars.servrs: not used by the shipped template, which reads only "
                "servers, nomad_version, network_interface "
                "(a custom cloud_init template may use other names)"
            ],
        ),
        (
            "nomad_version: 1.10",
            [
                "cloud_init_vars.nomad_version: 1.1 must be an apt version string such as "
                "'1.9.3-1' (quote it: YAML reads 1.10 as the number 1.1)"
            ],
        ),
        (
            "network_interface: ''",
            ["cloud_init_vars.network_interface: '' must be an interface name such as 'eth0'"],
        ),
        (
            "servers: nomad.lab",
            [
                "cloud_init_vars.servers: 'nomad.lab' must be a list of Nomad server addresses, "
                f"{SERVERS_EXAMPLE} (a single server too: 'servers: [nomad.lab]')"
            ],
        ),
        (
            "servers: []",
            [
                "cloud_init_vars.servers: is empty; a VM needs at least one Nomad server "
                f"address to join, {SERVERS_EXAMPLE}"
            ],
        ),
        (
            "servers: [a, 'nomad lab', 10]",
            [
                f"cloud_init_vars.servers: entry 2 ('nomad lab') {BAD_SERVER}",
                f"cloud_init_vars.servers: entry 3 (10) {BAD_SERVER}",
            ],
        ),
    ],
)
def test_the_shipped_templates_variables_word_for_word(variables: str, expected: list[str]) -> None:
    assert problems({**BASE, "cloud_init_vars": variables}) == expected


@pytest.mark.parametrize("variables", ["", "  ", "# none yet", "~"])
def test_cloud_init_vars_that_hold_nothing_are_an_empty_map(variables: str) -> None:
    # With the shipped template that means: servers from Nomad at launch.
    spec = parse_pool_spec("web", {**BASE, "cloud_init_vars": variables}, 1)
    assert dict(spec.cloud_init_vars) == {}
