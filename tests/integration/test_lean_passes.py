"""What a pass reuses from the last one, and that an edit is still seen at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from reconciler import controller as controller_module
from reconciler import ownership
from reconciler.hosts import HostSource
from reconciler.plan import ActionKind
from reconciler.pools import DEFAULT_PREFIX, PoolSource, PrefixListing, pool_path, status_path
from reconciler.render import default_template_text
from reconciler.sim.faults import Fault
from reconciler.sim.world import SimConfig
from reconciler.status import StatusWriter
from tests.integration.sim_harness import Harness, harness

BLOCKED_POLICY = """
checks:
  - name: blocked
    metric: blocked_evaluations
"""

POLICY = """
cooldown: 2m
checks:
  - name: mem
    metric: percentage-allocated_memory
    strategy: {name: target-value, target: 60}
"""


def _template(edit: int) -> str:
    # The shipped template with a trailing comment: a different text, the same user-data.
    return default_template_text() + f"\n# edit {edit}\n"


def _hashes(instances: list[str]) -> set[str]:
    parsed = [ownership.parse_instance_name(name) for name in instances]
    return {p[1] for p in parsed if p is not None}


async def test_an_edit_of_one_pools_template_is_seen_at_the_next_pass() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "3", "cloud_init": _template(1)})
        await h.put_pool("db", {"min": "1", "max": "1", "cloud_init": _template(1)})
        await h.converge()
        first = _hashes(h.instances("web"))
        db_before = h.instances("db")

        await h.put_pool("web", {"min": "2", "max": "3", "cloud_init": _template(2)})
        report = await h.step()
        plans = {pp.pool: pp.plan for pp in report.plans}
        web, db = plans["web"], plans["db"]
        assert web is not None and db is not None
        assert {web.template_hash} != first
        # The rollout starts in the very pass that read the edit: a launch of the new text.
        launches = [a for a in web.actions if a.kind is ActionKind.LAUNCH]
        assert launches and _hashes([a.instance for a in launches]) == {web.template_hash}
        assert db.actions == () and _hashes(db_before) == {db.template_hash}

        await h.converge()
        assert _hashes(h.instances("web")) == {web.template_hash}
        assert h.instances("db") == db_before

        # Back to the first text: its hash again, not the last one parsed.
        await h.put_pool("web", {"min": "2", "max": "3", "cloud_init": _template(1)})
        report = await h.step()
        again = next(pp.plan for pp in report.plans if pp.pool == "web")
        assert again is not None and {again.template_hash} == first


async def test_a_broken_edit_is_refused_at_once_and_its_fix_plans_again() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1", "cloud_init": _template(1)})
        await h.converge()
        await h.put_pool("web", {"min": "1", "max": "1", "cloud_init": "{% if %}"})
        report = await h.step()
        [web] = report.plans
        assert web.plan is None and any("syntax error" in p for p in web.problems)
        await h.put_pool("web", {"min": "1", "max": "1", "cloud_init": _template(1)})
        report = await h.step()
        [web] = report.plans
        assert web.plan is not None and not web.problems


async def test_an_unchanged_pool_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    parse = controller_module.parse_pool_spec

    def counting(pool: str, *args: object, **kwargs: object) -> object:
        parsed.append(pool)
        return parse(pool, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(controller_module, "parse_pool_spec", counting)
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1"})
        await h.put_pool("db", {"min": "1", "max": "1"})
        await h.converge()
        assert sorted(parsed) == ["db", "web"]
        await h.put_pool("web", {"min": "2", "max": "2"})
        await h.step()
        await h.step()
        assert sorted(parsed) == ["db", "web", "web"]


async def test_a_pass_that_drains_plans_the_other_pools_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "3"})
        await h.put_pool("db", {"min": "1", "max": "1"})
        await h.converge()
        planned: list[str] = []
        plan = controller_module.plan

        def counting(spec: Any, *args: Any, **kwargs: Any) -> Any:
            planned.append(spec.pool)
            return plan(spec, *args, **kwargs)

        monkeypatch.setattr(controller_module, "plan", counting)
        await h.put_pool("web", {"min": "1", "max": "3"})
        report = await h.step()
        web = next(pp.plan for pp in report.plans if pp.pool == "web")
        assert web is not None and [a.kind for a in web.actions] == [ActionKind.DRAIN]
        # web again once its victim's node was read in full; db had nothing to read.
        assert sorted(planned) == ["db", "web", "web"]


def _var_reads(h: Harness) -> Counter[str]:
    return Counter(
        {route: n for route, n in h.sim.nomad.requests.items() if route.startswith("GET /v1/var/")}
    )


async def test_steady_passes_read_no_pool_or_status_variable_again() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "3"})
        await h.put_pool("db", {"min": "1", "max": "1", "policy": POLICY})
        await h.converge()
        before = _var_reads(h)
        await h.step()
        await h.step()
        # Each pass lists the pool and status variables; none of them is read again.
        assert _var_reads(h) == before
        await h.put_pool("web", {"min": "2", "max": "3"})
        await h.step()
        read = _var_reads(h) - before
        own = f"GET /v1/var/{DEFAULT_PREFIX}"
        # The edited pool's variable; and, as the edit launches a member of the shipped
        # template, the variable `<prefix>` for the cluster's TLS material: the list did
        # not show it (here it does not exist; the shipped ACL policies do not let it be
        # listed), so it is read at every pass that launches.
        assert read == Counter({f"GET /v1/var/{pool_path(DEFAULT_PREFIX, 'web')}": 1, own: 1})
        await h.converge()

        # Created (it holds no TLS material here): listed, so read once, then known.
        await h.c.nomad.put_var(DEFAULT_PREFIX, {"note": "edited"})
        before = _var_reads(h)
        await h.put_pool("web", {"min": "3", "max": "3"})
        await h.step()
        assert (_var_reads(h) - before)[own] == 1
        await h.converge()
        before = _var_reads(h)
        await h.put_pool("web", {"min": "2", "max": "3"})
        await h.step()  # a drain: nothing to launch, nothing to join
        await h.converge()
        await h.put_pool("web", {"min": "3", "max": "3"})
        await h.step()
        assert (_var_reads(h) - before)[own] == 0  # launched again, unchanged: not read


async def test_a_status_written_by_someone_else_is_read_again() -> None:
    async with harness() as h:
        writer = StatusWriter(h.c.nomad)
        path = status_path(DEFAULT_PREFIX, "web")
        prefix = status_path(DEFAULT_PREFIX, "")
        assert await writer.read(path) == {}
        assert await writer.write(path, lambda previous: {**previous, "ready": "1"})
        await h.c.nomad.put_var(path, {"ready": "1", "last_scale_count": "4"})  # another replica
        await writer.refresh(prefix)
        assert await writer.read(path) == {"ready": "1", "last_scale_count": "4"}
        # Ours again: known from the write, nothing to read.
        assert await writer.write(path, lambda previous: {**previous, "ready": "2"})
        reads = _var_reads(h)
        await writer.refresh(prefix)
        assert await writer.read(path) == {"ready": "2", "last_scale_count": "4"}
        assert _var_reads(h) == reads
        await h.c.nomad.delete_var(path)
        await writer.refresh(prefix)
        assert await writer.read(path) == {}


async def test_a_pass_lists_its_variables_once() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1"})
        await h.put_pool("db", {"min": "1", "max": "1", "policy": POLICY})
        await h.converge()
        lists = h.sim.nomad.requests["GET /v1/vars"]
        await h.step()
        # One list of `<prefix>`: the pools, the status variables (deleted pools and
        # cooldowns), the reconciler's own variable and the host variables.
        assert h.sim.nomad.requests["GET /v1/vars"] - lists == 1


async def test_variables_under_a_sibling_prefix_are_not_pools_here() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1"})
        # Nomad lists by string prefix: `<prefix>-old/...` matches `<prefix>` but is not ours.
        await h.c.nomad.put_var(f"{DEFAULT_PREFIX}-old/pools/legacy", {"min": "1"})
        await h.c.nomad.put_var(f"{DEFAULT_PREFIX}-old/status/gone", {"ready": "0"})
        await h.c.nomad.put_var(f"{DEFAULT_PREFIX}-old/hosts/other", {"address": "10.9.9.9:1"})
        hosts = h.c.controller.observer.fleet.names()
        report = await h.step()
        assert [pp.pool for pp in report.plans] == ["web"]
        assert h.c.controller.observer.fleet.names() == hosts


async def test_the_host_watch_primed_from_the_pass_list_wakes_for_hosts_alone() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1"})
        await h.c.nomad.put_var(f"{DEFAULT_PREFIX}/hosts/one", {"address": "10.9.9.8:1"})
        source = HostSource(h.c.nomad, DEFAULT_PREFIX)
        [one] = await source.load(PrefixListing(h.c.nomad, DEFAULT_PREFIX))
        assert one.host == "one"
        # The pass's list held pools too, and other variables moved the index since: the
        # watch's first answer comes at once, and is no change of the hosts.
        await h.put_pool("web", {"min": "2", "max": "2"})
        await h.c.nomad.put_var(status_path(DEFAULT_PREFIX, "web"), {"ready": "0"})
        watch = asyncio.ensure_future(source.wait_for_change())
        await asyncio.sleep(0.3)
        assert not watch.done()
        await h.c.nomad.put_var(f"{DEFAULT_PREFIX}/hosts/extra", {"address": "10.9.9.9:1"})
        await asyncio.wait_for(watch, 5)


async def test_blocked_evaluations_are_read_only_while_a_pool_has_a_policy() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "8"})
        await h.converge()
        reads = h.sim.nomad.requests
        before = reads["GET /v1/evaluations"]
        # 6 x 1,500 MB cannot fit on one 2,048 MB node: 5 are blocked.
        h.sim.nomad_state.run_job("big", count=6, cpu_mhz=100, memory_mb=1500)
        await h.step()
        assert reads["GET /v1/evaluations"] == before
        # The pass that reads the policy reads the blocked work too, and sizes the pool by it.
        await h.put_pool("web", {"min": "1", "max": "8", "policy": BLOCKED_POLICY})
        [pool] = (await h.step()).plans
        assert pool.plan is not None and pool.plan.desired == 6
        assert reads["GET /v1/evaluations"] == before + 1
        await h.step()
        assert reads["GET /v1/evaluations"] == before + 2
        # The policy gone, the reads stop (the pass that finds it gone may have begun one).
        await h.put_pool("web", {"min": "1", "max": "8"})
        await h.step()
        after = reads["GET /v1/evaluations"]
        await h.step()
        assert reads["GET /v1/evaluations"] == after <= before + 3


def _record_plans_and_starts(monkeypatch: pytest.MonkeyPatch, h: Harness) -> list[tuple[str, str]]:
    """("plan", pool) as each pool is planned, (action kind, pool) as each action starts."""
    events: list[tuple[str, str]] = []
    plan = controller_module.plan

    def planning(spec: Any, *args: Any, **kwargs: Any) -> Any:
        events.append(("plan", spec.pool))
        return plan(spec, *args, **kwargs)

    executor = h.c.controller.executor
    run_action = executor.run_action

    def starting(spec: Any, action: Any) -> Any:
        events.append((action.kind.value, spec.pool))
        return run_action(spec, action)

    monkeypatch.setattr(controller_module, "plan", planning)
    monkeypatch.setattr(executor, "run_action", starting)
    return events


async def test_an_edited_pool_acts_before_the_pools_after_it_are_planned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = SimConfig(seed=5, boot_seconds=20, heartbeat_timeout=15, migrate_seconds=10, hosts=2)
    async with harness(config) as h:
        for pool in ("db", "web", "zzz"):
            await h.put_pool(pool, {"min": "1", "max": "3"})
        await h.converge()
        events = _record_plans_and_starts(monkeypatch, h)
        await h.step()
        assert events == [("plan", "db"), ("plan", "web"), ("plan", "zzz")]  # nothing edited
        events.clear()
        await h.put_pool("web", {"min": "2", "max": "3"})
        await h.step()
        # Name order still (db's launches would take their room on the hosts first),
        # but zzz's plan does not hold web's launch back.
        assert events == [("plan", "db"), ("plan", "web"), ("launch", "web"), ("plan", "zzz")]
        await h.converge()
        events.clear()
        await h.put_pool("db", {"min": "2", "max": "3"})
        await h.step()
        assert events == [("plan", "db"), ("launch", "db"), ("plan", "web"), ("plan", "zzz")]


async def test_an_edit_reads_how_to_join_beside_planning_and_never_an_older_passs_read() -> None:
    own = f"GET /v1/var/{DEFAULT_PREFIX}"
    pem = "-----BEGIN CERTIFICATE-----\nMIIBsim\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQsim\n-----END EC PRIVATE KEY-----\n"
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "2"})
        await h.converge()
        reads = h.sim.nomad.requests[own]
        await h.step()
        assert h.sim.nomad.requests[own] == reads  # nothing edited, nothing launched
        # An edit that launches nothing: how to join is read all the same (ahead).
        await h.put_pool("web", {"min": "1", "max": "3"})
        [web] = (await h.step()).plans
        assert web.plan is not None and web.plan.actions == ()
        assert h.sim.nomad.requests[own] == reads + 1
        # The cluster turns on TLS; the next edit launches, with the material as it is now.
        await h.c.nomad.put_var(
            DEFAULT_PREFIX,
            {"nomad_ca_cert": pem, "nomad_client_cert": pem, "nomad_client_key": key},
        )
        await h.put_pool("web", {"min": "2", "max": "3"})
        await h.converge()
        tls = "/etc/nomad.d/tls/client-key.pem"
        with_tls = [n for n in h.instances() if tls in h.sim.multipass_state.instances[n].user_data]
        assert len(h.instances()) == 2 and len(with_tls) == 1


async def test_an_edit_the_watch_saw_is_read_beside_the_list_and_kept_only_if_current() -> None:
    async with harness() as h:
        path = pool_path(DEFAULT_PREFIX, "web")
        reads = h.sim.nomad.requests
        await h.put_pool("web", {"min": "1", "max": "2"})
        source = PoolSource(h.c.nomad, DEFAULT_PREFIX)
        await source.load()
        before = reads[f"GET /v1/var/{path}"]

        async def edit_seen(items: dict[str, str]) -> None:
            watch = asyncio.ensure_future(source.wait_for_change())
            await asyncio.sleep(0.1)  # its first query is answered and it blocks
            await h.put_pool("web", items)
            await asyncio.wait_for(watch, 5)

        await edit_seen({"min": "2", "max": "2"})
        [web] = await source.load()
        assert web.items["min"] == "2"
        assert reads[f"GET /v1/var/{path}"] == before + 1  # read once, ahead of the list
        # Edited again between the early read and the list: the list says the read is
        # stale, so the variable is read again and the later edit is what is planned.
        await edit_seen({"min": "3", "max": "3"})
        h.sim.faults.set("GET /v1/vars", Fault(latency=0.3))
        load = asyncio.ensure_future(source.load())
        await asyncio.sleep(0.15)
        assert reads[f"GET /v1/var/{path}"] == before + 2  # the early read is back
        await h.put_pool("web", {"min": "4", "max": "4"})
        [web] = await load
        h.sim.faults.clear()
        assert web.items["min"] == "4"
        assert reads[f"GET /v1/var/{path}"] == before + 3
