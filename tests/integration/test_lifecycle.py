"""Health remediation, rolling replacement and protection, end to end on the simulators."""

from __future__ import annotations

import json

from reconciler import ownership
from reconciler.pools import DEFAULT_PREFIX, status_path
from tests.integration.sim_harness import Harness, harness

# A template that boots fine but never makes a Nomad client: every VM of it stays unjoined.
BROKEN_TEMPLATE = "#cloud-config\npackages: [curl]\n"


def hash_of(name: str) -> str:
    parsed = ownership.parse_instance_name(name)
    assert parsed is not None
    return parsed[1]


async def conditions(h: Harness, pool: str = "web") -> dict[str, dict[str, object]]:
    items = (await h.c.nomad.get_var(status_path(DEFAULT_PREFIX, pool))).items
    return {c["type"]: c for c in json.loads(items["conditions"])}


async def test_an_image_change_rolls_the_pool_within_surge_and_unavailable() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "3", "max": "3", "image": "24.04"})
        await h.converge()
        old = set(h.instances())
        await h.put_pool("web", {"min": "3", "max": "3", "image": "22.04", "max_surge": "1"})
        for _ in range(80):
            report = await h.step()
            # max_surge 1: never more than 4 VMs; max_unavailable 0: never fewer than 3 serving.
            assert len(h.instances()) <= 4, h.instances()
            assert len(h.ready_nodes()) >= 3, h.ready_nodes()
            if report.converged and not h.c.controller.executor.inflight:
                break
        else:
            raise AssertionError("the rollout did not finish")
        new = h.instances()
        assert len(new) == 3 and not old & set(new)
        assert len({hash_of(n) for n in new}) == 1
        assert h.ready_nodes() == new
        assert (await conditions(h))["Ready"]["status"] is True


async def test_a_node_that_goes_down_is_replaced() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "2", "unhealthy_timeout": "60s"})
        await h.converge()
        victim = h.instances()[0]
        h.sim.multipass_state.stop(victim)  # the VM crashes: its node misses heartbeats
        for _ in range(4):  # 20 s: the node is down, but not for unhealthy_timeout yet
            await h.step()
        assert victim in h.instances()
        for _ in range(20):  # down for over a minute: replaced (launch first, then delete)
            await h.step()
            if victim not in h.instances():
                break
        await h.converge()
        assert victim not in h.instances()
        assert len(h.ready_nodes()) == 2
        assert not any(n.name == victim for n in h.sim.nomad_state.nodes.values())  # purged


async def test_a_template_that_breaks_every_vm_trips_the_short_circuit() -> None:
    async with harness() as h:
        items = {"min": "3", "max": "3", "cloud_init": BROKEN_TEMPLATE, "join_timeout": "60s"}
        await h.put_pool("web", items)
        for _ in range(20):  # 100 s: every VM is past its join timeout
            await h.step()
        stuck = h.instances()
        assert len(stuck) == 3 and h.ready_nodes() == []
        for _ in range(20):  # and stays: no churn of replacements
            report = await h.step()
        assert h.instances() == stuck
        [pool] = report.plans
        assert pool.plan is not None and pool.plan.actions == ()
        degraded = (await conditions(h))["Degraded"]
        assert degraded["status"] is True and degraded["reason"] == "RemediationShortCircuited"

        # Fixing the template is a spec edit: the broken members are replaced.
        await h.put_pool("web", {"min": "3", "max": "3", "join_timeout": "60s"})
        await h.converge(max_passes=120)
        assert len(h.ready_nodes()) == 3 and not set(stuck) & set(h.instances())


async def test_protected_members_are_never_drained_and_block_a_rollout() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "3", "max": "3"})
        await h.converge()
        protected = h.instances()[1]
        node = h.sim.nomad_state.find_node(protected)
        assert node is not None
        h.sim.nomad_state.apply_node_meta(node.id, {ownership.META_PROTECT: "true"})

        await h.put_pool("web", {"min": "1", "max": "1"})
        await h.converge()
        assert h.instances() == [protected]  # scale-in chose the others

        await h.put_pool("web", {"min": "1", "max": "1", "image": "22.04"})
        for _ in range(30):
            report = await h.step()
            assert protected in h.ready_nodes()
            # It counts as it is: no replacement is launched only to be scaled in again.
            assert h.instances() == [protected]
        [pool] = report.plans
        assert pool.plan is not None
        assert any("protected members block replacement" in n for n in pool.plan.notes)
        assert pool.plan.counts["protected"] == 1


async def test_a_broken_template_edit_on_a_healthy_pool_stops_after_one_bad_instance() -> None:
    async with harness() as h:
        items = {"min": "3", "max": "3", "join_timeout": "60s"}
        await h.put_pool("web", items)
        await h.converge()
        old = h.instances()
        await h.put_pool("web", {**items, "cloud_init": BROKEN_TEMPLATE})
        seen = set(old)
        for _ in range(120):  # 10 minutes: ten join timeouts
            await h.step()
            seen.update(h.instances())
            assert set(old) <= set(h.ready_nodes())  # the old members keep serving
        [bad] = seen - set(old)  # one launch, never replaced: no churn
        assert h.instances() == sorted([*old, bad])
        degraded = (await conditions(h))["Degraded"]
        assert degraded["status"] is True and degraded["reason"] == "RolloutStalled"
        assert bad in str(degraded["message"])

        # Deleting the bad instance is the retry the message offers: it is launched
        # once more (the lowest free name again) and the rollout stalls again.
        h.sim.multipass_state.delete([bad], purge=True)
        for _ in range(40):
            await h.step()
            assert len(h.instances()) <= 4
        assert h.instances() == sorted([*old, bad])
        assert set(old) <= set(h.ready_nodes())
        assert (await conditions(h))["Degraded"]["reason"] == "RolloutStalled"


async def test_a_down_node_named_like_ours_is_purged_only_with_our_pool_meta() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "0", "max": "1"})
        nomad = h.sim.nomad_state
        # Registered by someone else under a name of our shape; no instance of ours.
        theirs = nomad.register_node("web-bcdfg-7", meta={ownership.META_POOL: "someone-else"})
        unmarked = nomad.register_node("web-bcdfg-8", meta={})
        ours = nomad.register_node("web-bcdfg-9", meta={ownership.META_POOL: "web"})
        h.sim.advance(10, step=5)
        for name in ("web-bcdfg-7", "web-bcdfg-8", "web-bcdfg-9"):
            nomad.node_lost(name)
        h.sim.advance(120, step=5)
        for _ in range(6):
            await h.step()
        assert theirs in nomad.nodes and unmarked in nomad.nodes
        assert ours not in nomad.nodes  # the full read names our pool: purged
