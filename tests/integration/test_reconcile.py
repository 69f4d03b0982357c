"""The whole reconciler (controller, clients, executor) against both simulators, over the wire."""

from __future__ import annotations

import json
import random

import pytest

from reconciler import ownership
from reconciler.pools import DEFAULT_PREFIX, status_path
from reconciler.sim.faults import Fault
from tests.integration.sim_harness import harness


async def test_a_new_pool_converges_to_min_and_its_vms_join_nomad() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "3", "max": "5", "node_class": "batch"})
        await h.converge()
        assert len(h.instances()) == 3
        assert h.ready_nodes() == h.instances()
        node = next(iter(h.sim.nomad_state.nodes.values()))
        # What registered is what the rendered cloud-init configured.
        assert node.node_class == "batch"
        assert node.meta[ownership.META_POOL] == "web"


async def test_scale_down_drains_then_deletes_then_purges() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "3", "max": "5"})
        await h.converge()
        h.sim.nomad_state.run_job("api", count=3, cpu_mhz=200, memory_mb=128)
        await h.put_pool("web", {"min": "1", "max": "1"})
        await h.converge()
        assert len(h.instances()) == 1
        assert len(h.sim.nomad_state.nodes) == 1  # purged, not left down
        live = [a for a in h.sim.nomad_state.allocs.values() if a.live]
        assert len(live) == 3  # the work moved to the survivor
        drained = [n for n in h.sim.nomad_state.nodes.values()]
        assert all(n.eligibility == "eligible" for n in drained)


async def test_an_invalid_spec_changes_nothing_and_other_pools_go_on() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "3"})
        await h.converge()
        before = h.instances()
        await h.put_pool("web", {"min": "2", "mxa": "1"})  # a typo
        await h.put_pool("db", {"min": "1", "max": "1"})
        report = await h.step()
        web = next(p for p in report.plans if p.pool == "web")
        assert web.plan is None
        assert any("mxa: unknown item" in problem for problem in web.problems)
        await h.converge()
        assert h.instances() == before
        assert len(h.instances("db")) == 1


async def test_a_failed_instance_list_is_not_an_empty_inventory() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "2"})
        await h.converge()
        before = h.instances()
        h.sim.faults.set("info", Fault(error_rate=1.0))
        await h.put_pool("web", {"min": "3", "max": "3"})
        report = await h.step()
        assert report.error is not None
        assert report.plans == []
        assert h.instances() == before
        h.sim.faults.clear()
        await h.converge()
        assert len(h.instances()) == 3


async def test_a_failed_read_shows_in_status_and_clears_when_reads_succeed() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1"})
        await h.converge()
        path = status_path(DEFAULT_PREFIX, "web")
        h.sim.faults.set("info", Fault(error_rate=1.0))
        report = await h.step()
        assert report.error is not None and h.instances() != []
        during = (await h.c.nomad.get_var(path)).items
        degraded = {c["type"]: c for c in json.loads(during["conditions"])}["Degraded"]
        assert degraded["status"] is True and degraded["reason"] == "ObserveFailed"
        assert during["last_error"].startswith("observing failed, nothing planned: ")
        assert during["ready"] == "1"  # the last known counts stay
        # A lasting outage does not rewrite the variable pass after pass.
        index = (await h.c.nomad.get_var(path)).modify_index
        await h.step()
        assert (await h.c.nomad.get_var(path)).modify_index == index

        h.sim.faults.clear()
        await h.converge()
        after = (await h.c.nomad.get_var(path)).items
        degraded = {c["type"]: c for c in json.loads(after["conditions"])}["Degraded"]
        assert degraded["status"] is False and "last_error" not in after


async def test_foreign_vms_and_nodes_are_never_touched() -> None:
    async with harness() as h:
        mp = h.sim.multipass_state
        mp.begin_launch("primary")
        mp.create("primary", "24.04", 1, 2**30, 2**30, "")
        h.sim.nomad_state.register_node("nomad-server-1")
        await h.put_pool("web", {"min": "0", "max": "2"})
        await h.converge()
        assert "primary" in mp.instances
        assert any(n.name == "nomad-server-1" for n in h.sim.nomad_state.nodes.values())


async def test_a_restart_mid_launch_reuses_names_and_never_duplicates() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "3", "max": "3"})
        await h.c.controller.reconcile_once(wait_actions=False)
        # A second controller (as after a crash) plans with no memory of the first.
        from reconciler.controller import Controller
        from reconciler.execute import Executor, ExecutorLimits
        from reconciler.render import render_cloud_init

        first = h.c.controller
        second = Controller(
            first.pools,
            first.observer,
            Executor(h.c.multipass, h.c.nomad, render_cloud_init, ExecutorLimits(attempts=2)),
            first.clock,
        )
        await second.reconcile_once(wait_actions=False)
        h.c.controller = second
        await h.converge()
        first_names = [n for n in h.instances()]
        assert len(first_names) == 3
        assert len({n.rsplit("-", 1)[0] for n in first_names}) == 1


async def test_a_vm_that_never_joins_is_replaced() -> None:
    async with harness() as h:
        h.sim.join_failure = Fault(error_rate=1.0)
        await h.put_pool("web", {"min": "1", "max": "2", "join_timeout": "60s"})
        for _ in range(6):
            await h.step(5)
        stuck = h.instances()
        assert len(stuck) == 1 and h.ready_nodes() == []
        h.sim.join_failure = Fault()
        await h.converge()
        assert stuck[0] not in h.instances()
        assert len(h.ready_nodes()) == 1


async def test_random_launch_failures_still_converge() -> None:
    async with harness() as h:
        h.sim.faults.reseed(random.Random(9).randrange(1000))
        h.sim.multipassd.launch_failure = Fault(error_rate=0.4)
        await h.put_pool("web", {"min": "4", "max": "4"})
        await h.converge(max_passes=120)
        assert len(h.ready_nodes()) == 4


async def test_the_loop_reacts_to_a_spec_edit_without_waiting_for_resync() -> None:
    import asyncio

    async with harness() as h:
        controller = h.c.controller
        controller.resync = 10**9  # only the watches can wake it
        stop = asyncio.Event()
        loop_task = asyncio.create_task(controller.run(stop))
        await asyncio.sleep(0.2)
        await h.put_pool("web", {"min": "2", "max": "2"})  # the variable watch wakes the loop
        for _ in range(100):
            h.sim.advance(2, step=2)
            await asyncio.sleep(0.05)
            if len(h.ready_nodes()) == 2:
                break
        assert len(h.ready_nodes()) == 2
        stop.set()  # what SIGTERM does: finish in-flight calls, then return
        await asyncio.wait_for(loop_task, 10)
        assert not controller.executor.inflight


async def test_the_pool_watch_ignores_writes_outside_the_pools() -> None:
    import asyncio

    from reconciler.pools import DEFAULT_PREFIX, status_path

    async with harness() as h:
        await h.put_pool("web", {"min": "0", "max": "1"})
        pools = h.c.pools
        waiter = asyncio.create_task(pools.wait_for_change())
        await asyncio.sleep(0.2)
        # Status writes move Nomad's variables index but are not a spec change.
        await h.c.nomad.put_var(status_path(DEFAULT_PREFIX, "web"), {"ready": "0"})
        await h.c.nomad.put_var(status_path(DEFAULT_PREFIX, "web"), {"ready": "1"})
        await asyncio.sleep(0.3)
        assert not waiter.done()
        await h.put_pool("web", {"min": "1", "max": "1"})
        await asyncio.wait_for(waiter, 5)


async def test_one_pool_whose_planning_crashes_is_backed_off_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reconciler import controller as controller_module
    from reconciler.pools import DEFAULT_PREFIX, status_path

    real_plan = controller_module.plan
    planned: list[str] = []

    def plan_with_a_bug(spec, *args, **kwargs):  # type: ignore[no-untyped-def]
        planned.append(spec.pool)
        if spec.pool == "bad":
            raise ZeroDivisionError("division by zero")
        return real_plan(spec, *args, **kwargs)

    monkeypatch.setattr(controller_module, "plan", plan_with_a_bug)
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1"})
        await h.put_pool("bad", {"min": "1", "max": "1"})
        # Before containment: ZeroDivisionError out of the pass, and out of `run`.
        report = await h.c.controller.reconcile_once(wait_actions=False)
        bad = next(p for p in report.plans if p.pool == "bad")
        assert bad.plan is None and bad.error == "ZeroDivisionError: division by zero"
        web = next(p for p in report.plans if p.pool == "web")
        assert web.plan is not None and web.plan.actions
        status = await h.c.nomad.get_var(status_path(DEFAULT_PREFIX, "bad"))
        assert status.items["last_error"] == "planning failed: ZeroDivisionError: division by zero"

        # Backed off: the next pass (no time passed) does not plan it again...
        planned.clear()
        await h.c.controller.reconcile_once(wait_actions=False)
        assert "bad" not in planned and "web" in planned
        # ...but an edit of its spec is tried at once.
        await h.put_pool("bad", {"min": "1", "max": "2"})
        planned.clear()
        await h.c.controller.reconcile_once(wait_actions=False)
        assert "bad" in planned

        await h.converge()  # the healthy pool converges beside the broken one
        assert len(h.ready_nodes("web")) == 1
        assert h.instances("bad") == []


async def test_an_action_ending_while_the_world_is_read_is_not_planned_again() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1"})
        controller = h.c.controller
        plans, _ = await controller.plan_all()
        [launch] = plans[0].plan.actions  # type: ignore[union-attr]
        # The launch is under way; it ends (and leaves the in-flight set) while the
        # world is being read, after the instance list was taken without it.
        controller.executor.inflight.add(launch.key)
        real_observe = controller.observer.observe

        async def observe_then_finish(listing=None):  # type: ignore[no-untyped-def]
            observed = await real_observe(listing)
            controller.executor.inflight.discard(launch.key)
            return observed

        controller.observer.observe = observe_then_finish  # type: ignore[method-assign]
        plans, _ = await controller.plan_all()
        assert plans[0].plan is not None
        assert launch not in plans[0].plan.actions  # not a second launch of the same name


def test_apply_never_prints_a_secret_that_an_error_quotes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    from reconciler.app import EXIT_ERROR, ApplyOutput
    from reconciler.controller import PassReport
    from reconciler.execute import ActionResult
    from reconciler.logs import redact
    from reconciler.plan import Action, ActionKind

    secret = "pass-phrase-4f9c2e"
    redact(secret)  # as connect() does with the passphrase it loads
    failed = ActionResult(
        Action(ActionKind.LAUNCH, "web-abc-0", "below min"),
        ok=False,
        duration=1.0,
        error=f"launch web-abc-0: authenticate({secret!r}) refused",
    )
    output = ApplyOutput(sys.stdout)
    output.action(failed)
    assert output.finish(PassReport(results=[failed]), wait=False) == EXIT_ERROR
    failing = PassReport(error=f"GET /v1/x?token={secret}")
    assert ApplyOutput(sys.stdout).finish(failing, wait=False) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert "launch web-abc-0: FAILED after 1.0s: authenticate('[redacted]') refused" in out
    assert "error: GET /v1/x?token=[redacted]" in err
    assert secret not in out + err


async def test_an_image_the_daemon_refuses_is_a_problem_of_the_pool_not_a_launch_to_retry() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "2", "image": "18.04"})
        first = await h.step()
        assert not first.converged
        launches = h.sim.multipassd.calls.get("launch", 0)
        assert launches == 2 and h.instances() == []  # refused before anything was created
        for _ in range(5):
            report = await h.step(60)
        assert h.sim.multipassd.calls["launch"] == launches  # not retried, pass after pass
        [pp] = report.plans
        assert pp.plan is not None and pp.plan.actions == ()
        assert any("image '18.04': multipassd refused it" in n for n in pp.plan.notes)
        status = (await h.c.nomad.get_var(status_path(DEFAULT_PREFIX, "web"))).items
        degraded = {c["type"]: c for c in json.loads(status["conditions"])}["Degraded"]
        assert degraded["status"] is True and degraded["reason"] == "ImageNotFound"
        assert "18.04" in degraded["message"]
        # Naming an image the daemon has puts the pool back to work.
        await h.put_pool("web", {"min": "2", "max": "2", "image": "24.04"})
        await h.converge()
        assert len(h.instances()) == 2


async def test_plan_reads_the_daemons_image_list_and_says_so_before_any_launch() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1", "image": "daily:24.04"})
        h.c.controller.observer.check_images = True  # as `reconciler plan` does
        plans, _ = await h.c.controller.plan_all()
        [pp] = plans
        assert pp.plan is not None and pp.plan.actions == ()
        assert pp.plan.image_problem is not None
        assert "image 'daily:24.04': multipassd does not offer it" in pp.plan.image_problem
        assert h.sim.multipassd.calls.get("launch", 0) == 0
        await h.put_pool("web", {"min": "1", "max": "1", "image": "daily:26.10"})
        plans, _ = await h.c.controller.plan_all()
        assert [a.kind.value for a in plans[0].plan.actions] == ["launch"]  # type: ignore[union-attr]


async def test_a_launch_that_times_out_leaves_a_kept_member_replaced_if_it_stays_unknown() -> None:
    from dataclasses import replace

    from reconciler.model import InstanceState

    async with harness() as h:
        executor = h.c.controller.executor
        normal = executor.limits
        executor.limits = replace(normal, launch_timeout=10)  # VMs here boot in 20s
        await h.put_pool("web", {"min": "1", "max": "1", "unhealthy_timeout": "1m"})
        for _ in range(8):
            await h.step()
        [first] = h.instances()
        assert h.sim.multipass_state.instances[first].state is InstanceState.UNKNOWN
        # The daemon kept it and the guest booted: its node joined, it counts as a
        # member, and nothing launches a second one while it may still be fine.
        assert h.ready_nodes() == [first]
        assert h.sim.multipassd.calls["launch"] == 1
        executor.limits = normal
        # It stays UNKNOWN: past unhealthy_timeout it is replaced.
        for _ in range(8):
            await h.step(10)
        await h.converge(seconds=10)
        [survivor] = h.instances()
        assert h.sim.multipassd.calls["launch"] == 2  # a new VM (the name may be reused)
        assert h.sim.multipass_state.instances[survivor].state is InstanceState.RUNNING
