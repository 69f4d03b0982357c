"""A newcomer's first hour, in process: deleting a pool, min/max-only pools, hung reads."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from reconciler.nomad.errors import NotFound
from reconciler.pools import DEFAULT_PREFIX, PoolSource, pool_path, status_path
from reconciler.sim.faults import Fault
from tests.integration.sim_harness import harness


async def test_a_deleted_pool_is_drained_deleted_and_its_status_removed_last() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "3"})
        await h.put_pool("db", {"min": "1", "max": "1"})
        await h.converge()
        assert len(h.instances()) == 2
        await h.c.nomad.delete_var(pool_path(DEFAULT_PREFIX, "web"))
        plans, _ = await h.c.controller.plan_all()
        web = next(pp for pp in plans if pp.pool == "web")
        assert web.variable.deleted and web.plan is not None
        assert web.plan.desired == 0
        assert sorted(a.kind.value for a in web.plan.actions) == ["drain", "drain"]
        assert {a.reason for a in web.plan.actions} == {"spec deleted"}
        for _ in range(40):
            await h.step()
            if not h.instances() and not h.ready_nodes():
                break
        await h.converge()
        assert h.instances() == []
        assert [n for n in h.sim.nomad_state.nodes.values() if n.name.startswith("web-")] == []
        try:
            await h.c.nomad.get_var(status_path(DEFAULT_PREFIX, "web"))
            raise AssertionError("the status of the deleted pool is still there")
        except NotFound:
            pass
        assert len(h.instances("db")) == 1  # the other pool is untouched
        plans, _ = await h.c.controller.plan_all()
        assert [pp.pool for pp in plans] == ["db"]


async def test_a_pool_never_acted_on_here_is_never_collected() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "3"})
        await h.converge()
        # Another prefix (or namespace) has no status for web: it sees no pools at all,
        # not "a deleted pool with 2 members".
        elsewhere = PoolSource(h.c.nomad, "nomad/jobs/other")
        assert await elsewhere.load() == []


async def test_a_paused_pool_whose_spec_is_deleted_keeps_its_vms() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "3"})
        await h.converge()
        await h.put_pool("web", {"min": "2", "max": "3", "paused": "true"})
        await h.step()
        await h.c.nomad.delete_var(pool_path(DEFAULT_PREFIX, "web"))
        for _ in range(5):
            report = await h.step()
        [web] = report.plans
        assert web.variable.deleted and web.plan is not None and web.plan.paused
        assert web.plan.actions == () and len(h.instances()) == 2
        # Forgetting the pool is then the status variable's deletion: the VMs stay.
        await h.c.nomad.delete_var(status_path(DEFAULT_PREFIX, "web"))
        report = await h.step()
        assert report.plans == [] and len(h.instances()) == 2


async def test_a_pool_of_only_min_and_max_joins_the_servers_nomad_lists() -> None:
    async with harness() as h:
        await h.c.nomad.put_var(pool_path(DEFAULT_PREFIX, "web"), {"min": "2", "max": "4"})
        await h.converge()
        assert len(h.ready_nodes()) == 2
        launched = h.sim.multipass_state.instances[h.instances()[0]]
        peers = await h.c.nomad.status_peers()
        assert peers and all(f'"{p}"' in launched.user_data for p in peers)


@pytest.mark.parametrize("endpoint", ["GET /v1/nodes", "info"])
async def test_a_hung_read_marks_each_pool_degraded_within_one_pass(endpoint: str) -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1"})
        await h.converge()
        h.c.controller.read_timeout = 0.5  # real seconds; the pass's own deadline
        h.sim.faults.set(endpoint, Fault(hang=True))
        report = await h.c.controller.reconcile_once()
        assert report.error is not None and "did not finish within 0.5s" in report.error
        status = (await h.c.nomad.get_var(status_path(DEFAULT_PREFIX, "web"))).items
        degraded = {c["type"]: c for c in json.loads(status["conditions"])}["Degraded"]
        assert degraded["status"] is True and degraded["reason"] == "ObserveFailed"
        assert "a read hangs" in status["last_error"]
        h.sim.faults.clear()


async def test_an_invalid_pool_is_logged_once_per_change_with_the_pool_as_a_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with harness() as h:
        await h.put_pool("bad", {"min": "3", "max": "1"})
        with caplog.at_level(logging.ERROR, logger="reconciler.controller"):
            for _ in range(3):
                await h.step()
            await h.put_pool("bad", {"min": "4", "max": "1"})  # a change: logged again
            for _ in range(2):
                await h.step()
        invalid = [r for r in caplog.records if "invalid spec" in r.getMessage()]
        assert [getattr(r, "pool", None) for r in invalid] == ["bad", "bad"]
        assert "max: 1 is below min (4)" in invalid[1].getMessage()


async def test_with_tls_material_in_the_prefix_variable_new_vms_join_over_tls() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIBsim\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQsim\n-----END EC PRIVATE KEY-----\n"
    async with harness() as h:
        await h.c.nomad.put_var(
            DEFAULT_PREFIX,
            {"nomad_ca_cert": pem, "nomad_client_cert": pem, "nomad_client_key": key},
        )
        await h.c.nomad.put_var(pool_path(DEFAULT_PREFIX, "web"), {"min": "1", "max": "1"})
        report = await h.converge()
        [web] = report.plans
        assert len(h.ready_nodes()) == 1
        data = yaml.safe_load(h.sim.multipass_state.instances[h.instances()[0]].user_data)
        files = {f["path"]: f for f in data["write_files"]}
        assert files["/etc/nomad.d/tls/client-key.pem"]["content"] == key
        assert files["/etc/nomad.d/tls/client-key.pem"]["permissions"] == "0600"
        assert (
            'ca_file                = "/etc/nomad.d/tls/ca.pem"'
            in (files["/etc/nomad.d/nomad.hcl"]["content"])
        )
        # Not part of the instance's shape: the member is current, not outdated.
        assert web.plan is not None and web.plan.counts["outdated"] == 0


def test_tls_items_go_together() -> None:
    from reconciler.cluster import tls_from_items
    from reconciler.errors import ConfigError

    assert tls_from_items("p", {"client_cert": "x"}) is None
    with pytest.raises(ConfigError, match="nomad_ca_cert set without nomad_client_cert"):
        tls_from_items("p", {"nomad_ca_cert": "-----BEGIN CERTIFICATE-----"})
