"""reconciler.plan.placement, one function at a time: hosts for launches, within capacity."""

from __future__ import annotations

from collections import Counter

import pytest

from reconciler import ownership
from reconciler.model import HostState
from reconciler.plan import join
from reconciler.plan.model import Member, Phase, PoolWorld, Resources
from reconciler.plan.placement import (
    allowed_hosts,
    displacement,
    footprint,
    free_capacity,
    place,
    pool_usage,
    scale_in_order,
    takes_new_members,
)
from tests.worlds import NOW, GiB, host, instance, node, spec, world

# 2 CPUs, 2G memory, 10G disk: the default spec's footprint.
NEED = Resources(2, 2 * GiB, 10 * GiB)


def fleet(*states: HostState) -> dict[str, HostState]:
    return {h.name: h for h in states}


def roomy(hosts: dict[str, HostState]) -> dict[str, Resources]:
    return free_capacity(hosts, {})


def member(pool: str, name: str, where: str, **fields: object) -> Member:
    parsed = ownership.parse_instance_name(name)
    assert parsed is not None
    base = Member(
        name=name,
        template_hash=parsed[1],
        ordinal=parsed[2],
        phase=Phase.READY,
        instance=instance(name, host=where),
        node=None,
        outdated=False,
        protected=False,
        host=where,
    )
    return base._replace(**fields)  # type: ignore[arg-type]


def members_on(s: object, counts: dict[str, int]) -> list[Member]:
    out = []
    for h, n in counts.items():
        for i in range(n):
            name = ownership.instance_name("web", "bcdfg", i, h)
            out.append(member("web", name, h))
    return out


# ---------------------------------------------------------------- footprint, usage, free


def test_footprint_is_the_specs_cpus_memory_and_disk() -> None:
    s = spec(cpus=3, memory="1536M", disk="20G")
    assert footprint(s) == Resources(3, 1536 << 20, 20 * GiB)


def test_pool_usage_counts_listed_instances_per_host() -> None:
    s = spec()
    names = [ownership.instance_name("web", s.template_hash, i, "host1") for i in range(2)]
    names.append(ownership.instance_name("web", s.template_hash, 0, "host2"))
    w = PoolWorld(instances=tuple(instance(n) for n in names))
    assert pool_usage(s, w) == {"host1": NEED * 2, "host2": NEED}


def test_pool_usage_counts_an_outdated_instance_at_the_current_size() -> None:
    s = spec(memory="4G")
    old = ownership.instance_name("web", "zzzzz", 0, "host1")
    usage = pool_usage(s, PoolWorld(instances=(instance(old),)))
    assert usage == {"host1": Resources(2, 4 * GiB, 10 * GiB)}


def test_pool_usage_counts_a_launch_in_flight_once() -> None:
    s = spec()
    listed = ownership.instance_name("web", s.template_hash, 0, "host1")
    unlisted = ownership.instance_name("web", s.template_hash, 1, "host1")
    other_pool = ownership.instance_name("db", s.template_hash, 0, "host1")
    w = PoolWorld(instances=(instance(listed),))
    # In flight is a set of keys, as the executor keeps them (one action per kind and name).
    inflight = {
        ("launch", listed),  # listed already: its instance counts, not the launch as well
        ("launch", unlisted),  # being prepared: it takes room before it is listed
        ("delete", listed),  # a delete frees nothing until the instance is gone
        ("launch", other_pool),  # another pool's launch is that pool's usage
        ("launch", "primary"),  # not a name of ours
    }
    assert pool_usage(s, w, inflight) == {"host1": NEED * 2}


def test_pool_usage_of_a_launch_in_flight_goes_to_the_host_its_name_says() -> None:
    s = spec()
    default = ownership.instance_name("web", s.template_hash, 0)
    elsewhere = ownership.instance_name("web", s.template_hash, 0, "host3")
    usage = pool_usage(s, PoolWorld(), [("launch", default), ("launch", elsewhere)])
    assert usage == {"default": NEED, "host3": NEED}


def test_free_capacity_is_the_hosts_capacity_less_what_is_used() -> None:
    hosts = fleet(host("host1", cpus=8, memory=8 * GiB, disk=100 * GiB), host("host2"))
    free = free_capacity(hosts, {"host1": NEED * 3, "nowhere": NEED})
    assert free["host1"] == Resources(2, 2 * GiB, 70 * GiB)
    assert free["host2"] == Resources(64, 64 * GiB, 1000 * GiB)
    assert set(free) == {"host1", "host2"}  # usage on a host not in the fleet is not a host


# ---------------------------------------------------------------- which hosts


def test_allowed_hosts_takes_names_and_globs_sorted() -> None:
    names = ["rack2b", "host1", "rack1a", "rack1b", "other"]
    assert allowed_hosts(spec(), names) == sorted(names)  # default `*`
    assert allowed_hosts(spec(hosts="rack1*"), names) == ["rack1a", "rack1b"]
    assert allowed_hosts(spec(hosts="host1, rack?b"), names) == ["host1", "rack1b", "rack2b"]
    assert allowed_hosts(spec(hosts="nothere"), names) == []


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (host("h"), None),
        (host("h", reachable=False), "unreachable"),
        (host("h", cordoned=True), "cordoned"),
        (host("h", evacuate=True), "being evacuated"),
    ],
)
def test_takes_new_members(state: HostState, why: str | None) -> None:
    assert takes_new_members(state) == why


def test_displacement_of_an_evacuated_or_disallowed_host() -> None:
    s = spec(hosts="host1,host2")
    hosts = fleet(host("host1"), host("host2", evacuate=True), host("host3"))
    on = {h: member("web", f"web-bcdfg-{h}-0", h) for h in hosts}
    assert displacement(s, hosts, on["host1"]) is None
    assert displacement(s, hosts, on["host2"]) == "host host2 is being evacuated"
    assert displacement(s, hosts, on["host3"]) == (
        "host host3 is not among the pool's hosts (host1, host2)"
    )
    # A cordon keeps members where they are: it only stops new ones.
    assert displacement(s, fleet(host("host1", cordoned=True)), on["host1"]) is None


def test_no_displacement_without_an_instance_or_a_readable_host() -> None:
    s = spec(hosts="host1")
    hosts = fleet(host("host1"), host("host2", evacuate=True))
    frozen = member("web", "web-bcdfg-host2-0", "host2", frozen=True)
    assert displacement(s, hosts, frozen) is None  # nothing can be done there now
    no_vm = member("web", "web-bcdfg-host2-1", "host2", instance=None)
    assert displacement(s, hosts, no_vm) is None
    # The world before hosts: nothing is known of any host.
    assert displacement(s, {}, member("web", "web-bcdfg-0", "default")) is None


# ---------------------------------------------------------------- place: spread and pack


def test_spread_evens_the_pools_members_out_ties_by_host_name() -> None:
    s = spec()
    hosts = fleet(host("host3"), host("host1"), host("host2"))
    chosen, short = place(s, 5, hosts, roomy(hosts), [])
    assert short is None
    assert chosen == ["host1", "host2", "host3", "host1", "host2"]


def test_spread_fills_the_emptiest_hosts_first() -> None:
    s = spec()
    hosts = fleet(host("host1"), host("host2"), host("host3"))
    staying = members_on(s, {"host1": 3, "host2": 1})
    chosen, _ = place(s, 4, hosts, roomy(hosts), staying)
    assert chosen == ["host3", "host2", "host3", "host2"]
    after = Counter(chosen) + Counter(m.host for m in staying)
    assert max(after.values()) - min(after.values()) <= 1


def test_members_being_replaced_or_lost_do_not_count_toward_the_spread() -> None:
    s = spec()
    hosts = fleet(host("host1"), host("host2"))
    leaving = [
        member("web", "web-bcdfg-host1-0", "host1", outdated=True),
        member("web", "web-bcdfg-host1-1", "host1", unhealthy="node down"),
        member("web", "web-bcdfg-host1-2", "host1", displaced="moved"),
        member("web", "web-bcdfg-host1-3", "host1", lost=True, frozen=True),
    ]
    staying = [member("web", "web-bcdfg-host2-0", "host2")]
    chosen, _ = place(s, 1, hosts, roomy(hosts), leaving + staying)
    assert chosen == ["host1"]


def test_pack_fills_one_host_before_the_next() -> None:
    s = spec(placement="pack")
    # Room for two members on each host (memory is what runs out).
    hosts = fleet(*(host(h, memory=5 * GiB) for h in ("host2", "host1", "host3")))
    chosen, short = place(s, 5, hosts, roomy(hosts), [])
    assert short is None
    assert chosen == ["host1", "host1", "host2", "host2", "host3"]


def test_pack_adds_to_the_fullest_host_that_has_room() -> None:
    s = spec(placement="pack")
    hosts = fleet(host("host1", memory=6 * GiB), host("host2"), host("host3"))
    staying = members_on(s, {"host1": 3, "host2": 1})
    free = free_capacity(hosts, {"host1": NEED * 3, "host2": NEED})
    chosen, _ = place(s, 2, hosts, free, staying)
    assert chosen == ["host2", "host2"]  # host1 is full; host2 has more than host3


def test_pack_adds_to_the_fullest_host_even_when_its_name_sorts_last() -> None:
    s = spec(placement="pack")
    hosts = fleet(host("host1"), host("host2"), host("host3"))
    # host3 has the most members, host2 one, host1 none: fullest first, not by name.
    staying = members_on(s, {"host2": 1, "host3": 2})
    chosen, short = place(s, 1, hosts, roomy(hosts), staying)
    assert short is None
    assert chosen == ["host3"]
    # With host3 closed, one member beats none.
    hosts["host3"] = host("host3", cordoned=True)
    chosen, _ = place(s, 1, hosts, roomy(hosts), staying)
    assert chosen == ["host2"]


@pytest.mark.parametrize("placement", ["spread", "pack"])
@pytest.mark.parametrize(
    "closed",
    [
        host("host1", reachable=False),
        host("host1", cordoned=True),
        host("host1", evacuate=True),
    ],
)
def test_a_closed_host_takes_nothing(placement: str, closed: HostState) -> None:
    s = spec(placement=placement)
    hosts = fleet(closed, host("host2", memory=4 * GiB))
    chosen, short = place(s, 3, hosts, roomy(hosts), [])
    assert chosen == ["host2", "host2"]
    assert short is not None
    assert f"host1: {takes_new_members(closed)}" in short


def test_only_the_pools_hosts_take_its_members() -> None:
    s = spec(hosts="rack1*")
    hosts = fleet(host("rack1a"), host("rack1b"), host("host1"))
    chosen, short = place(s, 4, hosts, roomy(hosts), [])
    assert short is None
    assert sorted(chosen) == ["rack1a", "rack1a", "rack1b", "rack1b"]


def test_memory_and_disk_are_never_overcommitted() -> None:
    s = spec(memory="2G", disk="10G")
    hosts = fleet(
        host("host1", memory=5 * GiB),  # two fit by memory
        host("host2", disk=25 * GiB),  # two fit by disk
        host("host3", memory=2 * GiB - 1),  # none fits: one byte short
    )
    chosen, short = place(s, 6, hosts, roomy(hosts), [])
    assert Counter(chosen) == {"host1": 2, "host2": 2}
    assert short is not None and short.startswith("2 launches cannot be placed")


def test_cpus_are_what_the_host_state_says_overcommit_included() -> None:
    """HostState.cpus already carries cpu_overcommit (host CPUs x factor): placement
    adds nothing of its own, and never goes past it either."""
    s = spec(cpus=2)
    hosts = fleet(host("host1", cpus=16))  # a 4-CPU host at overcommit 4
    chosen, short = place(s, 9, hosts, roomy(hosts), [])
    assert chosen == ["host1"] * 8
    assert short is not None and "host1: 0 CPUs free" in short


def test_the_free_room_given_is_what_counts() -> None:
    s = spec()
    hosts = fleet(host("host1"), host("host2"))
    free = {"host1": NEED, "host2": Resources()}  # other pools took the rest
    chosen, short = place(s, 2, hosts, free, [])
    assert chosen == ["host1"]
    assert short is not None and "host2: 0 CPUs free, 0 memory free, 0 disk free" in short


def test_a_host_the_free_room_does_not_mention_has_no_room() -> None:
    s = spec()
    hosts = fleet(host("host1"), host("host2"))
    chosen, short = place(s, 2, hosts, {"host1": NEED}, [])
    assert chosen == ["host1"]
    assert short is not None and short.endswith("host2: 0 CPUs free, 0 memory free, 0 disk free")


def test_the_shortfall_names_each_host_and_what_is_missing() -> None:
    s = spec(cpus=2, memory="2G", disk="10G")
    hosts = fleet(
        host("host1", memory=1536 << 20),
        host("host2", cordoned=True),
        host("host3", reachable=False),
        host("host4", cpus=1, disk=5 * GiB),
        host("other"),
    )
    s = spec(cpus=2, memory="2G", disk="10G", hosts="host*")
    chosen, short = place(s, 2, hosts, roomy(hosts), [])
    assert chosen == []
    assert short == (
        "2 launches cannot be placed (2 CPUs, 2G memory, 10G disk each): "
        "host1: 1536M memory free; host2: cordoned; host3: unreachable; "
        "host4: 1 CPUs free, 5G disk free"
    )


def test_the_shortfall_when_no_host_matches() -> None:
    s = spec(hosts="rack*")
    hosts = fleet(host("host1"))
    chosen, short = place(s, 1, hosts, roomy(hosts), [])
    assert chosen == []
    assert short == (
        "1 launch cannot be placed (2 CPUs, 2G memory, 10G disk each): "
        "no host matches the pool's hosts (rack*)"
    )


def test_the_shortfall_lists_every_pattern_when_no_host_matches() -> None:
    s = spec(hosts="rack*, shelf1")
    hosts = fleet(host("host1"))
    _, short = place(s, 1, hosts, roomy(hosts), [])
    assert short is not None
    assert short.endswith(": no host matches the pool's hosts (rack*, shelf1)")


def test_the_shortfall_names_only_what_is_short_not_what_is_just_enough() -> None:
    s = spec(cpus=2, memory="2G", disk="10G")
    # Exactly 2 CPUs and 10G disk free: those fit; the memory falls short.
    hosts = fleet(host("host1", cpus=2, memory=1536 << 20, disk=10 * GiB))
    chosen, short = place(s, 1, hosts, roomy(hosts), [])
    assert chosen == []
    assert short == (
        "1 launch cannot be placed (2 CPUs, 2G memory, 10G disk each): host1: 1536M memory free"
    )


def test_the_world_before_hosts_places_everything_on_the_default_daemon() -> None:
    chosen, short = place(spec(), 3, {}, {}, [])
    assert chosen == ["default"] * 3 and short is None


def test_members_from_join_carry_their_host() -> None:
    s = spec()
    on2 = ownership.instance_name("web", s.template_hash, 0, "host2")
    gone = ownership.instance_name("web", s.template_hash, 0, "host3")
    w = world(
        [instance(on2)],
        [node(on2), node(gone, status_age=10)],
        hosts=[host("host2"), host("host3", reachable=False)],
    )
    members, _ = join(s, w, NOW)
    by_name = {m.name: m for m in members}
    assert by_name[on2].host == "host2" and not by_name[on2].frozen
    assert by_name[gone].host == "host3" and by_name[gone].frozen and not by_name[gone].lost


# ---------------------------------------------------------------- scale_in_order


def test_spread_scales_in_from_the_host_with_most_members() -> None:
    s = spec()
    staying = members_on(s, {"host1": 2, "host2": 3, "host3": 3})
    ordered = sorted(staying, key=lambda m: m.name)  # the strategy's order: host1's first
    out = scale_in_order(s, ordered, staying)
    assert [m.host for m in out[:2]] == ["host2", "host3"]  # 2,3,3 -> 2,2,3 -> 2,2,2
    assert [m.host for m in out[2:5]] == ["host1", "host2", "host3"]  # ties: strategy order
    assert sorted(m.name for m in out) == sorted(m.name for m in ordered)


def test_pack_scales_in_from_the_host_with_fewest_members() -> None:
    s = spec(placement="pack")
    staying = members_on(s, {"host1": 4, "host2": 1, "host3": 2})
    out = scale_in_order(s, sorted(staying, key=lambda m: m.name), staying)
    assert [m.host for m in out[:3]] == ["host2", "host3", "host3"]


def test_within_a_host_the_strategys_order_holds() -> None:
    s = spec()
    staying = members_on(s, {"host1": 3})
    ordered = list(reversed(staying))
    assert scale_in_order(s, ordered, staying) == ordered


def test_spread_breaks_a_tie_between_hosts_by_the_strategys_order_not_the_name() -> None:
    s = spec()
    staying = members_on(s, {"host1": 1, "host2": 1})
    # The strategy (least busy, say) puts host2's member first: the tie keeps that.
    ordered = sorted(staying, key=lambda m: m.host, reverse=True)
    out = scale_in_order(s, ordered, staying)
    assert [m.host for m in out] == ["host2", "host1"]


def test_spread_counts_each_removal_once() -> None:
    s = spec()
    staying = members_on(s, {"host1": 3, "host2": 2})
    ordered = sorted(staying, key=lambda m: m.name)  # host1's first
    out = scale_in_order(s, ordered, staying)
    # 3,2 -> 2,2 (a tie: host1 first in the strategy's order) -> 1,2 -> 1,1 -> ...
    assert [m.host for m in out] == ["host1", "host1", "host2", "host1", "host2"]


def test_scale_in_order_gives_only_the_first_limit() -> None:
    s = spec()
    staying = members_on(s, {"host1": 2, "host2": 3})
    ordered = sorted(staying, key=lambda m: m.name)
    out = scale_in_order(s, ordered, staying, limit=2)
    assert out == scale_in_order(s, ordered, staying)[:2]
    assert [m.host for m in out] == ["host2", "host1"]
