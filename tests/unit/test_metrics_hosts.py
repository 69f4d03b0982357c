"""Per-host gauges (reconciler.telemetry.Metrics.observe_hosts), read back from the registry."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from reconciler.clock import ManualClock
from reconciler.hosts_view import build_hosts
from reconciler.model import HostState
from reconciler.telemetry import Metrics
from tests.unit.test_hosts_view import WEB, G, member, pool_plan

P = "multipass_reconciler_"
Labels = tuple[tuple[str, str], ...]


def samples(m: Metrics, name: str) -> dict[Labels, float]:
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            if s.name == P + name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def res(host: str, resource: str, kind: str) -> Labels:
    return (("host", host), ("kind", kind), ("resource", resource))


HOSTS = {
    "host1": HostState("host1", cpus=16, memory=32 * G, disk=500 * G),
    "host2": HostState("host2", reachable=False, error="no answer"),
}


def test_each_host_has_reachable_members_and_capacity_used_and_free() -> None:
    m = Metrics(ManualClock())
    plans = [
        pool_plan(
            WEB,
            member(WEB, "host1", 0),
            member(WEB, "host1", 1),
            member(WEB, "host2", 0, seen=False),
        )
    ]
    m.observe_hosts(build_hosts(plans, HOSTS))
    assert samples(m, "host_reachable") == {(("host", "host1"),): 1, (("host", "host2"),): 0}
    assert samples(m, "host_members") == {
        (("host", "host1"), ("pool", "web")): 2,
        (("host", "host2"), ("pool", "web")): 1,
    }
    got = samples(m, "host_resources")
    assert got[res("host1", "cpus", "capacity")] == 16
    assert got[res("host1", "cpus", "used")] == 4
    assert got[res("host1", "cpus", "free")] == 12
    assert got[res("host1", "memory", "used")] == 8 * G
    assert got[res("host1", "memory", "free")] == 24 * G
    assert got[res("host1", "disk", "free")] == 460 * G
    # Unreachable: nothing listed there, and no capacity or free that nobody knows.
    assert got[res("host2", "memory", "used")] == 0
    assert res("host2", "memory", "capacity") not in got and res("host2", "cpus", "free") not in got


def test_a_host_or_pool_that_went_away_loses_its_series() -> None:
    m = Metrics(ManualClock())
    m.observe_hosts(build_hosts([pool_plan(WEB, member(WEB, "host2", 0))], HOSTS))
    assert (("host", "host2"), ("pool", "web")) in samples(m, "host_members")
    m.observe_hosts(
        build_hosts([pool_plan(WEB, member(WEB, "host1", 0))], {"host1": HOSTS["host1"]})
    )
    assert samples(m, "host_reachable") == {(("host", "host1"),): 1}
    assert samples(m, "host_members") == {(("host", "host1"), ("pool", "web")): 1}
    assert not any(dict(labels)["host"] == "host2" for labels in samples(m, "host_resources"))


def test_the_implicit_host_has_used_only() -> None:
    m = Metrics(ManualClock())
    m.observe_hosts(build_hosts([pool_plan(WEB, member(WEB, "default", 0))], {}))
    got = samples(m, "host_resources")
    assert {dict(labels)["kind"] for labels in got} == {"used"}
    assert got[res("default", "disk", "used")] == 20 * G
