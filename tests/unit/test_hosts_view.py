"""`reconciler hosts`: the pure view of each host, built from hand-made plans and hosts."""

from __future__ import annotations

import json

from reconciler import ownership
from reconciler.controller import PoolPlan
from reconciler.hosts_view import (
    HOSTS_SCHEMA,
    build_hosts,
    hosts_to_json,
    human_size,
    render_hosts_text,
)
from reconciler.model import HostState, Instance, InstanceState
from reconciler.plan import Member, Phase, Plan
from reconciler.pools import PoolVariable
from reconciler.spec import PoolSpec
from tests.worlds import NOW, spec

G = 1 << 30


def member(
    s: PoolSpec, host: str, ordinal: int, phase: Phase = Phase.READY, *, seen: bool = True
) -> Member:
    name = ownership.instance_name(s.pool, s.template_hash, ordinal, host)
    inst = Instance(name, InstanceState.RUNNING, NOW - 60, host=host) if seen else None
    return Member(name, s.template_hash, ordinal, phase, inst, None, False, False, host=host)


def pool_plan(s: PoolSpec, *members: Member) -> PoolPlan:
    plan = Plan(s.pool, s.index, s.template_hash, len(members), "min", (), members, {})
    variable = PoolVariable(s.pool, f"p/pools/{s.pool}", {}, s.index)
    return PoolPlan(variable, s, plan)


def invalid(pool: str) -> PoolPlan:
    return PoolPlan(PoolVariable(pool, f"p/pools/{pool}", {}, 3), None, None, ("max: bad",))


WEB = spec("web", cpus=2, memory="4G", disk="20G")
DB = spec("db", cpus=4, memory="8G", disk="50G")

FLEET = {
    "host1": HostState("host1", version="1.16.0", cpus=64, memory=60 * G, disk=900 * G),
    "host2": HostState("host2", reachable=False, error="daemon did not answer: deadline exceeded"),
    "host3": HostState(
        "host3", version="1.16.0", cpus=32, memory=10 * G, disk=100 * G, cordoned=True
    ),
}


def test_each_host_shows_capacity_used_free_and_members_per_pool_by_phase() -> None:
    plans = [
        pool_plan(
            WEB,
            member(WEB, "host1", 0),
            member(WEB, "host1", 1, Phase.PENDING),
            member(WEB, "host2", 0, seen=False),  # its daemon could not be read
            member(WEB, "host3", 0, Phase.DRAINING),
            member(WEB, "host3", 1, Phase.NODE_ONLY, seen=False),  # VM gone: takes nothing
        ),
        pool_plan(DB, member(DB, "host3", 0)),
        invalid("bad"),
    ]
    view = build_hosts(plans, FLEET)
    h1, h2, h3 = view.hosts
    assert [h.name for h in view.hosts] == ["host1", "host2", "host3"]

    assert h1.reachable and h1.version == "1.16.0" and not h1.cordoned
    assert (h1.used.cpus, h1.used.memory, h1.used.disk) == (4, 8 * G, 40 * G)
    assert h1.free is not None and (h1.free.cpus, h1.free.memory) == (60, 52 * G)
    assert [(p.pool, p.members, dict(p.phases)) for p in h1.pools] == [
        ("web", 2, {"pending": 1, "ready": 1})
    ]

    # Unreachable: its error, no capacity known, its members listed (by their nodes)
    # but taking nothing the planner would count: no instance of theirs was listed.
    assert not h2.reachable and h2.error == "daemon did not answer: deadline exceeded"
    assert h2.capacity is None and h2.free is None
    assert h2.members == 1 and h2.used.memory == 0

    # Cordoned, and over its memory: web's draining member and db's, not the node-only one.
    assert h3.cordoned and not h3.evacuate
    assert (h3.used.cpus, h3.used.memory, h3.used.disk) == (6, 12 * G, 70 * G)
    assert h3.free is not None and h3.free.memory == -2 * G
    assert [(p.pool, p.members) for p in h3.pools] == [("db", 1), ("web", 2)]
    assert view.unaccounted == {"bad": "no plan (invalid spec or planning failed)"}


def test_the_json_form_is_typed_and_says_its_schema() -> None:
    view = build_hosts([pool_plan(WEB, member(WEB, "host1", 0))], FLEET)
    doc = json.loads(json.dumps(hosts_to_json(view)))
    assert doc["schema"] == HOSTS_SCHEMA
    first, second, third = doc["hosts"]
    assert first == {
        "name": "host1",
        "registered": True,
        "reachable": True,
        "error": None,
        "version": "1.16.0",
        "cordoned": False,
        "evacuate": False,
        "max_parallel_launches": 2,
        "capacity": {"cpus": 64, "memory": 60 * G, "disk": 900 * G},
        "used": {"cpus": 2, "memory": 4 * G, "disk": 20 * G},
        "free": {"cpus": 62, "memory": 56 * G, "disk": 880 * G},
        "members": 1,
        "pools": {"web": {"members": 1, "phases": {"ready": 1}}},
    }
    assert second["reachable"] is False and second["capacity"] is None and second["free"] is None
    assert second["version"] is None and second["pools"] == {}
    assert third["cordoned"] is True and third["members"] == 0
    assert doc["unaccounted"] == {}


def test_no_host_variable_is_the_one_implicit_host_default_with_no_capacity_accounted() -> None:
    view = build_hosts([pool_plan(WEB, member(WEB, "default", 0), member(WEB, "default", 1))], {})
    [row] = view.hosts
    assert row.name == "default" and row.reachable and row.registered
    assert row.capacity is None and row.used.cpus == 4 and row.members == 2
    text = render_hosts_text(view)
    assert text.splitlines()[1].split() == ["default", "yes", "-", "2", "-"]
    assert "          cpus    4 used" in text.splitlines()


def test_members_on_a_host_no_variable_names_show_as_unregistered() -> None:
    view = build_hosts([pool_plan(WEB, member(WEB, "default", 0))], {"host1": FLEET["host1"]})
    default = next(h for h in view.hosts if h.name == "default")
    assert not default.registered and not default.reachable and default.members == 1
    assert "unregistered" in render_hosts_text(view)


def test_the_text_table_names_each_host_its_figures_and_its_pools() -> None:
    plans = [
        pool_plan(WEB, member(WEB, "host1", 0), member(WEB, "host3", 0)),
        pool_plan(DB, member(DB, "host3", 0)),
        invalid("bad"),
    ]
    evacuating = {**FLEET, "host1": HostState("host1", cpus=8, memory=8 * G, evacuate=True)}
    lines = render_hosts_text(build_hosts(plans, evacuating)).splitlines()
    assert lines[0].split() == ["HOST", "REACHABLE", "VERSION", "MEMBERS", "FLAGS"]
    assert lines[1].split() == ["host1", "yes", "-", "1", "evacuate"]
    assert "          memory  4G used of 8G, 4G free" in lines
    assert "          web: 1 member (1 ready)" in lines
    host2 = lines.index(next(line for line in lines if line.startswith("host2")))
    assert lines[host2].split()[:2] == ["host2", "no"]
    assert lines[host2 + 1] == "          error: daemon did not answer: deadline exceeded"
    assert "          capacity unknown: the daemon was not read" in lines
    host3 = next(line for line in lines if line.startswith("host3"))
    assert host3.split()[-1] == "cordoned"
    assert "          memory  12G used of 10G, -2G free (over capacity)" in lines
    assert lines[-1] == "pool bad: not counted: no plan (invalid spec or planning failed)"


def test_sizes_read_as_people_write_them() -> None:
    assert [human_size(n) for n in (0, 512 << 20, G, 3 * G // 2, -2 * G, 100)] == [
        "0",
        "512M",
        "1G",
        "1.5G",
        "-2G",
        "100B",
    ]
