"""Status seen per host: per-host counts, and the InsufficientCapacity condition."""

from __future__ import annotations

import dataclasses
import json

from reconciler import ownership
from reconciler.model import Instance, InstanceState
from reconciler.plan import Member, Phase, Plan, plan
from reconciler.status import read_status_table, status_items, status_to_json
from tests.worlds import NOW, ready_member, spec, world


def conds(items: dict[str, str]) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in json.loads(items["conditions"])}


def on(host: str, ordinal: int, phase: Phase = Phase.READY) -> Member:
    s = spec()
    name = ownership.instance_name(s.pool, s.template_hash, ordinal, host)
    inst = Instance(name, InstanceState.RUNNING, NOW, host=host)
    return Member(name, s.template_hash, ordinal, phase, inst, None, False, False, host=host)


def fleet_plan(*members: Member, no_room: str | None = None) -> Plan:
    base = plan(spec(), world(), NOW)
    return dataclasses.replace(base, members=members, insufficient_capacity=no_room)


def test_status_counts_members_and_ready_ones_per_host() -> None:
    p = fleet_plan(on("host1", 0), on("host1", 1, Phase.PENDING), on("host2", 0))
    items = status_items(p, 7, [], [], {}, NOW)
    assert json.loads(items["hosts"]) == {
        "host1": {"members": 2, "ready": 1},
        "host2": {"members": 1, "ready": 1},
    }
    assert status_to_json(items)["hosts"] == {
        "host1": {"members": 2, "ready": 1},
        "host2": {"members": 1, "ready": 1},
    }
    table = read_status_table({"web": items}).splitlines()
    assert f"{'':17}hosts: host1: 1/2 ready, host2: 1/1 ready" in table


def test_a_single_host_pool_counts_under_default_and_its_table_is_unchanged() -> None:
    s = spec(min=2)
    members = [ready_member(s, i) for i in range(2)]
    p = plan(s, world([m[0] for m in members], [m[1] for m in members]), NOW)
    items = status_items(p, 7, [], [], {}, NOW)
    assert json.loads(items["hosts"]) == {"default": {"members": 2, "ready": 2}}
    assert not any("hosts:" in line for line in read_status_table({"web": items}).splitlines())
    # No member, no host: an empty mapping, not a missing item.
    assert (
        json.loads(status_items(plan(spec(min=0), world(), NOW), 7, [], [], {}, NOW)["hosts"]) == {}
    )


def test_insufficient_capacity_is_a_condition_and_degrades_the_pool() -> None:
    why = "2 launches cannot be placed: host1: 1.5G memory free, 2G needed; host2: cordoned"
    items = status_items(fleet_plan(on("host1", 0), no_room=why), 7, [], [], {}, NOW)
    cond = conds(items)["InsufficientCapacity"]
    assert (cond["status"], cond["reason"], cond["message"]) == (True, "InsufficientCapacity", why)
    degraded = conds(items)["Degraded"]
    assert (degraded["status"], degraded["reason"], degraded["message"]) == (
        True,
        "InsufficientCapacity",
        why,
    )
    table = read_status_table({"web": items})
    assert "InsufficientCapacity=True" in table and table.count(why) == 1


def test_a_pool_that_fits_says_so_and_an_invalid_spec_adds_no_capacity_condition() -> None:
    fits = conds(status_items(fleet_plan(on("host1", 0)), 7, [], [], {}, NOW))
    assert fits["InsufficientCapacity"] == {
        "type": "InsufficientCapacity",
        "status": False,
        "reason": "Fits",
        "message": "",
        "last_transition": fits["InsufficientCapacity"]["last_transition"],
    }
    assert fits["Degraded"]["status"] is False
    # A world before hosts accounts nothing, so it always fits.
    today = conds(status_items(plan(spec(), world(), NOW), 7, [], [], {}, NOW))
    assert today["InsufficientCapacity"]["status"] is False
    assert "InsufficientCapacity" not in conds(status_items(None, 3, ["x"], [], {}, NOW))


def test_a_short_circuit_or_a_missing_image_is_named_before_the_capacity() -> None:
    base = fleet_plan(on("host1", 0), no_room="1 launch cannot be placed: host1: cordoned")
    short = dataclasses.replace(base, short_circuit="3 of 5 members unhealthy")
    assert conds(status_items(short, 7, [], [], {}, NOW))["Degraded"]["reason"] == (
        "RemediationShortCircuited"
    )
    image = dataclasses.replace(base, image_problem="no image 99.04")
    assert conds(status_items(image, 7, [], [], {}, NOW))["Degraded"]["reason"] == "ImageNotFound"
    stalled = dataclasses.replace(base, stalled="web-bcdfg-host1-3")
    assert conds(status_items(stalled, 7, [], [], {}, NOW))["Degraded"]["reason"] == (
        "InsufficientCapacity"
    )
