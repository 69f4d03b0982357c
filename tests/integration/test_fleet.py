"""A pool over several Multipass hosts, end to end on `sim --hosts 3` (in process).

Each behaviour of the fleet, as a user sees it through the simulators: where the
members go, what a daemon that stops answering changes (nothing), what a host
that powers off changes (its members are replaced elsewhere, and the surplus is
removed when it comes back), cordons, evacuation and a fleet with no room.
"""

from __future__ import annotations

import collections
import io
from collections.abc import AsyncIterator, Mapping

import pytest

from reconciler.app import print_plans
from reconciler.controller import PassReport
from reconciler.pools import DEFAULT_PREFIX
from reconciler.sim.multipass_state import HostCapacity
from reconciler.sim.world import SimConfig
from tests.integration.sim_harness import Harness, harness

GiB = 1024**3
HOSTS = ("host1", "host2", "host3")


def config(**overrides: object) -> SimConfig:
    base: dict[str, object] = dict(
        seed=5, boot_seconds=20, heartbeat_timeout=15, migrate_seconds=10, hosts=3
    )
    return SimConfig(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture
async def fleet() -> AsyncIterator[Harness]:
    async with harness(config()) as h:
        yield h


def by_host(h: Harness, pool: str = "web") -> dict[str, list[str]]:
    return {
        name: sorted(n for n in host.state.instances if n.startswith(pool + "-"))
        for name, host in h.sim.hosts.items()
    }


def all_names(h: Harness) -> list[str]:
    return [n for host in h.sim.hosts.values() for n in host.state.instances]


async def edit_host(h: Harness, host: str, **items: str) -> None:
    path = f"{DEFAULT_PREFIX}/hosts/{host}"
    current = dict((await h.c.nomad.get_var(path)).items)
    await h.c.nomad.put_var(path, {**current, **items})


async def steps_keeping_names_unique(h: Harness, passes: int) -> list[PassReport]:
    reports = []
    for _ in range(passes):
        reports.append(await h.step())
        names = all_names(h)
        duplicates = [n for n, k in collections.Counter(names).items() if k > 1]
        assert duplicates == [], f"one name on two hosts: {duplicates}"
    return reports


async def converge_unique(h: Harness, max_passes: int = 80) -> PassReport:
    for _ in range(max_passes):
        [report] = await steps_keeping_names_unique(h, 1)
        if report.converged and not h.c.controller.executor.inflight:
            return report
    raise AssertionError(f"did not converge in {max_passes} passes")


def ready_by_host(h: Harness) -> Mapping[str, int]:
    ready = set(h.ready_nodes())
    return {host: sum(n in ready for n in names) for host, names in by_host(h).items()}


async def test_a_pool_spreads_over_the_hosts_and_every_plan_line_names_its_host(
    fleet: Harness,
) -> None:
    await fleet.put_pool("web", {"min": "6", "max": "6"})
    plans, _ = await fleet.c.controller.plan_all("web")
    out = io.StringIO()
    print_plans(plans, "text", out)
    launches = [line for line in out.getvalue().splitlines() if "+ launch" in line]
    assert len(launches) == 6
    assert all(any(f" on {host} " in line for host in HOSTS) for line in launches), launches
    await converge_unique(fleet)
    assert ready_by_host(fleet) == {"host1": 2, "host2": 2, "host3": 2}
    # The host is part of each name: the same name can never be made on two hosts.
    assert all(f"-{host}-" in n for host, names in by_host(fleet).items() for n in names)


async def test_a_daemon_that_stops_answering_changes_nothing(fleet: Harness) -> None:
    await fleet.put_pool("web", {"min": "6", "max": "6", "unhealthy_timeout": "30s"})
    await converge_unique(fleet)
    before = by_host(fleet)
    await fleet.sim.host_daemon_down("host2")
    reports = await steps_keeping_names_unique(fleet, 30)  # 150 s: past every timeout
    for report in reports:
        [pp] = report.plans
        assert pp.plan is not None and pp.plan.actions == (), pp.plan
        assert pp.plan.waiting_on_hosts == ("host2",)
    assert by_host(fleet) == before and len(fleet.ready_nodes()) == 6
    await fleet.sim.host_daemon_up("host2")
    report = await fleet.step()
    assert report.converged and by_host(fleet) == before


async def test_a_host_that_powers_off_is_replaced_elsewhere_and_the_surplus_goes_when_it_returns(
    fleet: Harness,
) -> None:
    await fleet.put_pool("web", {"min": "6", "max": "6", "unhealthy_timeout": "30s"})
    await converge_unique(fleet)
    lost = by_host(fleet)["host2"]
    await fleet.sim.host_power_off("host2")
    await steps_keeping_names_unique(fleet, 12)  # heartbeats missed, then unhealthy_timeout
    await converge_unique(fleet)
    ready = ready_by_host(fleet)
    assert ready["host1"] + ready["host3"] == 6, ready
    assert by_host(fleet)["host2"] == lost  # untouched while it could not be read
    await fleet.sim.host_power_on("host2")
    await converge_unique(fleet)
    assert sum(len(v) for v in by_host(fleet).values()) == 6
    assert len(fleet.ready_nodes()) == 6


async def test_losing_one_host_of_three_is_not_short_circuited_by_max_unhealthy(
    fleet: Harness,
) -> None:
    # 2 of 6 lost with their host; max_unhealthy 1 would stop a broken template.
    items = {"min": "6", "max": "6", "unhealthy_timeout": "30s", "max_unhealthy": "1"}
    await fleet.put_pool("web", items)
    await converge_unique(fleet)
    await fleet.sim.host_power_off("host3")
    await steps_keeping_names_unique(fleet, 12)  # heartbeats missed, then unhealthy_timeout
    report = await converge_unique(fleet)
    [pp] = report.plans
    assert pp.plan is not None and pp.plan.short_circuit is None
    ready = ready_by_host(fleet)
    assert ready["host1"] + ready["host2"] == 6, ready


async def test_a_cordoned_host_takes_no_new_member(fleet: Harness) -> None:
    await edit_host(fleet, "host3", cordoned="true")
    await fleet.put_pool("web", {"min": "4", "max": "4"})
    await converge_unique(fleet)
    assert ready_by_host(fleet) == {"host1": 2, "host2": 2, "host3": 0}


async def test_evacuating_a_host_moves_its_members_within_the_budget(fleet: Harness) -> None:
    await fleet.put_pool("web", {"min": "6", "max": "6", "max_unavailable": "0"})
    await converge_unique(fleet)
    await edit_host(fleet, "host1", evacuate="true")
    for _ in range(80):
        [report] = await steps_keeping_names_unique(fleet, 1)
        # Never below desired ready: evacuation surges first, as a rollout does.
        assert len(fleet.ready_nodes()) >= 6
        if report.converged and not fleet.c.controller.executor.inflight:
            break
    assert by_host(fleet)["host1"] == []
    assert ready_by_host(fleet) == {"host1": 0, "host2": 3, "host3": 3}


async def test_a_pool_that_fits_nowhere_launches_what_fits_and_says_what_is_missing() -> None:
    # 4G hosts, 1G kept back by default: one 2G member per host.
    small = config(capacity=HostCapacity(cpus=4, memory=4 * GiB, disk=100 * GiB))
    async with harness(small) as h:
        await h.put_pool("web", {"min": "5", "max": "5", "memory": "2G", "disk": "10G"})
        for _ in range(20):
            await steps_keeping_names_unique(h, 1)
        plans, _ = await h.c.controller.plan_all("web")
        [pp] = plans
        assert pp.plan is not None and pp.plan.insufficient_capacity is not None
        assert "2 launches cannot be placed" in pp.plan.insufficient_capacity
        for host in HOSTS:
            assert f"{host}: " in pp.plan.insufficient_capacity
        assert ready_by_host(h) == {"host1": 1, "host2": 1, "host3": 1}
