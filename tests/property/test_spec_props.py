"""Spec validation properties over generated item maps (Hypothesis).

A map with any invalid item must be refused with a problem that names that item,
and the controller's planning step must then plan nothing for the pool: a typo
never turns into a launch or a deletion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from reconciler.controller import Controller, PoolPlan
from reconciler.model import Observed
from reconciler.plan import ActionKind
from reconciler.plan.scale_in import STRATEGIES
from reconciler.pools import PoolVariable
from reconciler.spec import ITEM_NAMES, SpecError, parse_pool_spec
from tests.worlds import NOW

SERVERS = "servers: [10.0.0.2]"


@dataclass(frozen=True)
class Bad:
    """One invalid value: the item it goes in, and the name its problem must start with."""

    item: str
    value: str
    named: str
    # Template errors found only by rendering, which runs once all else is valid.
    at_render: bool = False
    # Wrong only for the shipped template (a custom cloud_init may read other variables).
    shipped_only: bool = False


def _bad(item: str, *values: str) -> list[Bad]:
    return [Bad(item, v, item) for v in values]


# Per slot, ways of being wrong; one slot holds at most one of them.
BAD: dict[str, list[Bad]] = {
    "min": _bad("min", "-1", "10001", "x", "1.5", "²", ""),
    "cpus": _bad("cpus", "0", "65", "-2", "two"),
    "memory": _bad("memory", "256M", "2 gigs", "1.5", "0"),
    "disk": _bad("disk", "512M", "10 G B", "-1G"),
    "image": _bad("image", "", "22.04 lts", 'a"b'),
    "node_pool": _bad("node_pool", "all", "gpu.pool", "a b"),
    "drain_deadline": _bad("drain_deadline", "0", "0s", "500ms", "-5m", "soon", "5"),
    "join_timeout": _bad("join_timeout", "0s", "59s", "1h1"),
    "unhealthy_timeout": _bad("unhealthy_timeout", "0", "29s", "5 min"),
    "scale_in": _bad("scale_in", "random", "Least_Busy", ""),
    "paused": _bad("paused", "yes", "maybe", ""),
    "node_purge": _bad("node_purge", "on"),
    "max_surge": _bad("max_surge", "150%", "-1", "1.5"),
    "max_unhealthy": _bad("max_unhealthy", "101%", "x%"),
    "cloud_init_vars": [
        Bad("cloud_init_vars", "[1, 2]", "cloud_init_vars"),
        Bad("cloud_init_vars", "a: [", "cloud_init_vars"),
        Bad("cloud_init_vars", f"pool: x\n{SERVERS}", "cloud_init_vars"),
        Bad("cloud_init_vars", "servers: nomad.lab", "cloud_init_vars.servers", shipped_only=True),
        Bad("cloud_init_vars", "servers: []", "cloud_init_vars.servers", shipped_only=True),
        Bad("cloud_init_vars", "{}", "cloud_init_vars.servers", shipped_only=True),
        Bad("cloud_init_vars", "servers: [a b]", "cloud_init_vars.servers", shipped_only=True),
    ],
    "cloud_init": [
        Bad("cloud_init", "#cloud-config\n{% if %}", "cloud_init"),
        Bad("cloud_init", "#cloud-config\nx: {{ 1/0 }}\n", "cloud_init", at_render=True),
        Bad("cloud_init", "#cloud-config\nx: {{ nope }}\n", "cloud_init", at_render=True),
        Bad("cloud_init", "hello {{ 1 }}\n", "cloud_init", at_render=True),
        Bad("cloud_init", "#cloud-config\n{% for s in 5 %}{% endfor %}", "cloud_init", True),
    ],
}


@st.composite
def valid_items(draw: st.DrawFn) -> dict[str, str]:
    lo = draw(st.integers(1, 4))
    items = {"min": str(lo), "max": str(draw(st.integers(lo, 8))), "cloud_init_vars": SERVERS}
    optional: dict[str, st.SearchStrategy[str]] = {
        "cpus": st.integers(1, 64).map(str),
        "memory": st.sampled_from(["512M", "1G", "2G", "4096M"]),
        "disk": st.sampled_from(["1G", "10G", "20480M"]),
        "node_pool": st.sampled_from(["default", "gpu_pool", "lab-2"]),
        "drain_deadline": st.sampled_from(["1s", "90s", "5m", "1h30m"]),
        "join_timeout": st.sampled_from(["1m", "10m", "2h"]),
        "unhealthy_timeout": st.sampled_from(["30s", "5m"]),
        "scale_in": st.sampled_from(STRATEGIES),
        "paused": st.sampled_from(["false", "0", "False"]),
        "max_surge": st.sampled_from(["0", "1", "3", "25%"]),
        "max_unhealthy": st.sampled_from(["0", "40%", "100%"]),
    }
    for name in draw(st.sets(st.sampled_from(sorted(optional)))):
        items[name] = draw(optional[name])
    return items


@st.composite
def invalid_items(draw: st.DrawFn) -> tuple[dict[str, str], list[Bad]]:
    """A valid map with one or more slots made invalid, and what was made invalid."""
    items = draw(valid_items())
    slots = draw(st.sets(st.sampled_from([*BAD, "min>max", "unknown"]), min_size=1, max_size=4))
    if "min>max" in slots:
        slots.discard("min")  # both set min
    bads: list[Bad] = []
    for slot in sorted(slots):
        if slot == "min>max":
            hi = draw(st.integers(1, 20))
            items["min"], items["max"] = str(hi + draw(st.integers(1, 5))), str(hi)
            bads.append(Bad("max", items["max"], "max"))
        elif slot == "unknown":
            key = draw(
                st.from_regex(r"[A-Za-z_]{1,12}", fullmatch=True).filter(
                    lambda k: k not in ITEM_NAMES
                )
            )
            items[key] = "1"
            bads.append(Bad(key, "1", key))
        else:
            bad = draw(st.sampled_from(BAD[slot]))
            items[bad.item] = bad.value
            bads.append(bad)
    if "cloud_init" in items:
        # A custom template reads what it likes: the shipped template's rules stop applying.
        bads = [b for b in bads if not b.shipped_only]
    return items, bads


def _named(problems: list[str], name: str) -> bool:
    return any(p.startswith((f"{name}:", f"{name}.")) for p in problems)


def _plan_one(items: dict[str, str]) -> PoolPlan:
    """The controller's per-pool planning step, on an empty world (a valid spec launches)."""
    variable = PoolVariable("web", "nomad-pools/web", items, 7)
    observed = Observed(instances=(), nodes=(), allocations=(), at=NOW)
    # _plan_one reads nothing from the controller; calling it unbound keeps this test pure.
    return Controller._plan_one(cast(Any, None), variable, observed, NOW, frozenset())


@given(invalid_items())
def test_an_invalid_item_is_named_and_nothing_is_planned(
    case: tuple[dict[str, str], list[Bad]],
) -> None:
    items, bads = case
    try:
        parse_pool_spec("web", items)
    except SpecError as exc:
        problems = exc.problems
    else:
        raise AssertionError(f"accepted although invalid: {bads}")
    # Render-time template errors surface once the rest is valid; the others always do.
    checked = [b for b in bads if not b.at_render] or bads
    for bad in checked:
        assert _named(problems, bad.named), (bad, problems)
    outcome = _plan_one(items)
    assert (outcome.spec, outcome.plan, outcome.error) == (None, None, None), outcome
    assert list(outcome.problems) == problems


@given(valid_items())
def test_the_valid_maps_they_start_from_would_launch(items: dict[str, str]) -> None:
    # So the property above is not vacuous: without the invalid item, the pool acts.
    outcome = _plan_one(items)
    assert outcome.problems == () and outcome.plan is not None, outcome
    launches = [a for a in outcome.plan.actions if a.kind is ActionKind.LAUNCH]
    assert len(launches) == int(items["min"])
