"""Autoscaling end to end: Nomad's allocations and blocked evaluations move the pool."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.integration.sim_harness import Harness, harness

# 2 cpus x 2000 MHz and 2 GiB per instance: a node offers 4000 MHz and 2048 MB.
MEMORY_POLICY = """
cooldown: 2m
cooldown_on_scale_up: 30s
evaluation_interval: 10s
checks:
  - name: mem
    metric: percentage-allocated_memory
    strategy: {name: target-value, target: 60}
"""

BLOCKED_POLICY = """
cooldown: 10m
checks:
  - name: blocked
    metric: blocked_evaluations
"""


def at(iso: str) -> float:
    """A status timestamp (whole seconds, UTC) as epoch seconds."""
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


async def status(h: Harness) -> dict[str, str]:
    return dict((await h.c.nomad.get_var("nomad/jobs/multipass-reconciler/status/web")).items)


async def test_memory_pressure_grows_the_pool_and_its_end_shrinks_it_after_the_cooldown() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "6", "policy": MEMORY_POLICY})
        await h.converge()
        assert len(h.ready_nodes()) == 1
        # 1,600 MB of 2,048: 78% against a target of 60 -> ceil(1 x 1.3) = 2 nodes.
        h.sim.nomad_state.run_job("cache", count=4, cpu_mhz=100, memory_mb=400)
        report = await h.step()
        [pool] = report.plans
        assert pool.plan is not None and pool.plan.desired == 2
        assert pool.plan.scaling is not None and pool.plan.scaling.winner == "mem"
        await h.converge()
        assert len(h.ready_nodes()) == 2
        grown = await status(h)
        assert grown["last_scale_direction"] == "up" and grown["last_scale_count"] == "2"

        # More load: 3 more nodes' worth. Growth waits out cooldown_on_scale_up (30 s).
        h.sim.nomad_state.run_job("batch", count=6, cpu_mhz=100, memory_mb=600)
        for _ in range(20):
            await h.step()
            if int((await status(h))["last_scale_count"]) > 2:
                break
        grown = await status(h)
        assert grown["last_scale_direction"] == "up" and int(grown["last_scale_count"]) > 2

        # The work ends right after that scale-up. The cooldown is the scale-up's (30 s),
        # not the scale-down's (2 m): the pool starts shrinking between the two.
        h.sim.nomad_state.stop_job("cache")
        h.sim.nomad_state.stop_job("batch")
        since = 0.0
        for _ in range(40):
            since = h.c.controller.clock.now() - at(grown["last_scale_at"])
            [pool] = (await h.step()).plans
            assert pool.plan is not None and pool.plan.scaling is not None
            if pool.plan.scaling.scaled == "down":
                break
            assert since < 30 + 1, since  # whole seconds in status
        assert 30 <= since < 120, since
        await h.converge()
        assert len(h.instances()) == 1
        shrunk = await status(h)
        assert shrunk["last_scale_direction"] == "down"
        assert shrunk["last_scale_at"] >= grown["last_scale_at"]


async def test_a_job_that_cannot_be_placed_grows_the_pool_in_one_pass() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "8", "policy": BLOCKED_POLICY})
        await h.converge()
        # 6 x 1,500 MB cannot fit on one 2,048 MB node: 5 are blocked -> 5 more nodes.
        h.sim.nomad_state.run_job("big", count=6, cpu_mhz=100, memory_mb=1500)
        report = await h.step()
        [pool] = report.plans
        assert pool.plan is not None and pool.plan.desired == 6
        assert [a.kind.value for a in pool.plan.actions] == ["launch"] * 5
        checks = json.loads(json.dumps([c.__dict__ for c in pool.plan.scaling.checks]))  # type: ignore[union-attr]
        assert checks[0]["reason"].startswith("5 blocked placements need 5 more nodes")
        await h.converge()
        live = [a for a in h.sim.nomad_state.allocs.values() if a.live and a.job_id == "big"]
        assert len(live) == 6  # everything placed once the nodes joined
        assert len(h.instances()) == 6  # and no more than needed


async def test_a_pool_at_zero_grows_for_work_sized_from_its_job() -> None:
    async with harness() as h:
        # No node at all: Nomad's blocked evaluation says nothing about sizes, the job does.
        h.sim.nomad_state.run_job("api", count=6, cpu_mhz=500, memory_mb=1024)
        h.sim.nomad_state.run_job("elsewhere", count=4, datacenters=("dc9",), memory_mb=1024)
        h.sim.nomad_state.run_job("gpu", count=4, node_class="gpu", memory_mb=1024)
        await h.put_pool("web", {"min": "0", "max": "10", "policy": BLOCKED_POLICY})
        report = await h.step()
        [pool] = report.plans
        # Two 1 GB placements per 2 GB node: 3 nodes; dc9's and the gpu class's work is not ours.
        assert pool.plan is not None and pool.plan.desired == 3
        await h.converge()
        live = [a for a in h.sim.nomad_state.allocs.values() if a.live and a.job_id == "api"]
        assert len(live) == 6 and len(h.instances()) == 3


async def test_the_client_reads_a_jobs_shape() -> None:
    async with harness() as h:
        h.sim.nomad_state.run_job("db", count=2, cpu_mhz=700, memory_mb=300, node_class="web")
        shape = await h.c.nomad.get_job("db")
        [res] = shape.groups.values()
        assert (res.cpu_mhz, res.memory_mb) == (700, 300)
        assert shape.node_classes == ("web",) and shape.node_pool == "default"


async def test_a_restart_does_not_reset_the_cooldown() -> None:
    from reconciler.controller import Controller
    from reconciler.execute import Executor
    from reconciler.observe import Observer
    from reconciler.render import render_cloud_init

    async with harness() as h:
        # A scale-up's cooldown longer than the members take to boot.
        policy = MEMORY_POLICY.replace("cooldown_on_scale_up: 30s", "cooldown_on_scale_up: 5m")
        await h.put_pool("web", {"min": "1", "max": "6", "policy": policy})
        await h.converge()
        h.sim.nomad_state.run_job("cache", count=4, cpu_mhz=100, memory_mb=400)
        await h.converge()
        assert len(h.ready_nodes()) == 2
        h.sim.nomad_state.stop_job("cache")  # load gone: the policy wants 1 again

        old = h.c.controller  # a new process: nothing in memory but what Nomad holds
        h.c.controller = Controller(
            old.pools,
            Observer(h.c.nomad, h.c.multipass, old.clock),
            Executor(h.c.multipass, h.c.nomad, render_cloud_init, old.executor.limits),
            old.clock,
            status=old.status,
        )
        scaled_at = at((await status(h))["last_scale_at"])
        now = h.c.controller.clock.now()
        report = await h.step()
        [pool] = report.plans
        scaling = pool.plan.scaling  # type: ignore[union-attr]
        assert scaling is not None and scaling.count == 2 and scaling.scaled is None
        # Counted from the scale-up the status recorded, not from the restart.
        assert now > scaled_at and scaling.cooldown_until == scaled_at + 300
        assert scaling.cooldown_remaining == scaled_at + 300 - now
        assert "in cooldown_on_scale_up (300s) after the scale-up to 2" in scaling.reason
