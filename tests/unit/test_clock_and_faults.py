import asyncio

import pytest

from reconciler.clock import ManualClock
from reconciler.sim.faults import Fault, FaultInjector, parse_fault_flag


async def test_manual_clock_wakes_sleepers_only_when_advanced_far_enough() -> None:
    clock = ManualClock(start=100.0)
    task = asyncio.create_task(clock.sleep(10))
    await asyncio.sleep(0)
    clock.advance(9)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(1)
    await asyncio.sleep(0)
    assert task.done()
    assert clock.now() == 110.0


def test_manual_clock_refuses_to_go_back() -> None:
    with pytest.raises(ValueError):
        ManualClock().advance(-1)


def test_fault_lookup_prefers_exact_then_longest_prefix_then_star() -> None:
    inj = FaultInjector()
    inj.set("*", Fault(latency=1))
    inj.set("GET /v1/*", Fault(latency=2))
    inj.set("GET /v1/var*", Fault(latency=3))
    inj.set("GET /v1/nodes", Fault(latency=4))
    assert inj.lookup("GET /v1/nodes") == Fault(latency=4)
    assert inj.lookup("GET /v1/vars") == Fault(latency=3)
    assert inj.lookup("GET /v1/allocations") == Fault(latency=2)
    assert inj.lookup("launch") == Fault(latency=1)


def test_fault_rates_are_reproducible_under_a_seed() -> None:
    a, b = FaultInjector(seed=3), FaultInjector(seed=3)
    f = Fault(error_rate=0.5)
    assert [a.should_fail(f) for _ in range(50)] == [b.should_fail(f) for _ in range(50)]
    assert 0 < sum(a.should_fail(f) for _ in range(200)) < 200


def test_fault_flags_parse_and_reject_clearly() -> None:
    assert parse_fault_flag("launch:error_rate=0.3,latency=1") == (
        "launch",
        Fault(error_rate=0.3, latency=1.0),
    )
    assert parse_fault_flag("GET /v1/nodes:hang") == ("GET /v1/nodes", Fault(hang=True))
    with pytest.raises(ValueError, match="unknown option 'boom'"):
        parse_fault_flag("launch:boom")
    with pytest.raises(ValueError, match="not within"):
        parse_fault_flag("launch:error_rate=2")


def test_sim_job_flags_parse_and_name_their_mistakes() -> None:
    import pytest

    from reconciler.sim.runner import parse_job_flag

    assert parse_job_flag("api:count=6,cpu=500,memory=1024,node_class=web") == {
        "job_id": "api",
        "count": 6,
        "cpu_mhz": 500,
        "memory_mb": 1024,
        "node_class": "web",
    }
    with pytest.raises(ValueError, match="unknown option 'disk'"):
        parse_job_flag("api:disk=5")
    with pytest.raises(ValueError, match="count='many' is not a whole number"):
        parse_job_flag("api:count=many")
    with pytest.raises(ValueError, match="expected NAME:count=N"):
        parse_job_flag("api")
