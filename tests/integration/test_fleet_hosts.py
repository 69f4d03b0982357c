"""Two Multipass hosts over the wire: two simulated multipassd, one simulated Nomad.

The simulation's own daemon is host1; a second MultipassdSimServer, with its own
certificates, state and capacity, is host2. Both are named by host variables in the
simulated Nomad; the shared client credentials are the simulation's (the
MULTIPASS_* environment), which both daemons trust after `authenticate` with the
one passphrase. The observer reads both and tags their instances; the executor sends
each launch to its host's daemon; a stopped daemon is its host's outage alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.app import Connected, connect
from reconciler.clock import ManualClock
from reconciler.execute import ExecutorLimits
from reconciler.hosts import host_path
from reconciler.nomad.settings import NomadSettings
from reconciler.plan import Action, ActionKind
from reconciler.pools import DEFAULT_PREFIX
from reconciler.settings import Settings
from reconciler.sim.certs import generate
from reconciler.sim.multipass_state import GiB, HostCapacity, MultipassState
from reconciler.sim.multipassd_server import MultipassdSimServer
from reconciler.sim.world import SimConfig, Simulation
from tests.worlds import spec

SPEC = spec(min=0, max=4)
HASH = SPEC.template_hash


@dataclass
class TwoHosts:
    sim: Simulation
    second: MultipassdSimServer
    c: Connected

    @property
    def first_state(self) -> MultipassState:
        return self.sim.multipass_state

    @property
    def second_state(self) -> MultipassState:
        return self.second.state


def create(state: MultipassState, name: str) -> None:
    state.begin_launch(name)
    state.create(name, "24.04", 1, GiB, 5 * GiB, "")


@contextlib.asynccontextmanager
async def two_hosts(tmp_path: Path) -> AsyncIterator[TwoHosts]:
    clock = ManualClock()
    config = SimConfig(seed=3, capacity=HostCapacity(cpus=8, memory=32 * GiB, disk=200 * GiB))
    async with Simulation(config, clock) as sim:
        certs = generate(tmp_path / "host2", server_name="127.0.0.1")
        state = MultipassState(
            clock,
            random.Random(2),
            capacity=HostCapacity(cpus=4, memory=16 * GiB, disk=100 * GiB),
            version="1.16.1",
        )
        second = MultipassdSimServer(state, certs, passphrase=config.passphrase)
        await second.start()
        try:
            settings = Settings(
                prefix=DEFAULT_PREFIX,
                nomad=NomadSettings(address=sim.nomad.address),
                env=sim.environment(),
            )
            async with connect(settings, clock=clock) as c:
                await c.nomad.put_var(
                    host_path(DEFAULT_PREFIX, "host1"),
                    {
                        "address": sim.multipassd.address,
                        "server_cert": sim.certs.root_cert.read_text(),
                    },
                )
                await c.nomad.put_var(
                    host_path(DEFAULT_PREFIX, "host2"),
                    {
                        "address": second.address,
                        "server_cert": certs.root_cert.read_text(),
                        "reserve_disk": "20G",
                        "cordoned": "true",
                    },
                )
                yield TwoHosts(sim, second, c)
        finally:
            await second.stop()


async def test_both_daemons_are_read_and_their_instances_tagged(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as w:
        create(w.first_state, f"web-{HASH}-host1-0")
        create(w.second_state, f"web-{HASH}-host2-0")
        create(w.second_state, "hand-made")
        observed = await w.c.controller.observer.observe()
        assert sorted((i.name, i.host) for i in observed.instances) == sorted(
            [
                (f"web-{HASH}-host1-0", "host1"),
                (f"web-{HASH}-host2-0", "host2"),
                ("hand-made", "host2"),
            ]
        )
        assert sorted(observed.hosts) == ["host1", "host2"]  # the settings' daemon is no host
        one, two = observed.hosts["host1"], observed.hosts["host2"]
        assert one.reachable and two.reachable
        assert (one.cpus, one.memory, one.disk) == (32, 31 * GiB, 190 * GiB)
        assert (two.cpus, two.memory, two.disk) == (16, 15 * GiB, 80 * GiB)
        assert two.version == "1.16.1" and two.cordoned and not one.cordoned


async def test_a_stopped_daemon_is_its_host_s_outage_alone(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as w:
        create(w.first_state, f"web-{HASH}-host1-0")
        create(w.second_state, f"web-{HASH}-host2-0")
        observer = w.c.controller.observer
        assert len((await observer.observe()).instances) == 2
        address = w.second.address
        await w.second.stop()  # the daemon stops answering; its VMs are not gone
        observed = await observer.observe()
        assert [(i.name, i.host) for i in observed.instances] == [(f"web-{HASH}-host1-0", "host1")]
        two = observed.hosts["host2"]
        assert not two.reachable and two.error and "cannot reach multipassd" in two.error
        assert observed.hosts["host1"].reachable
        # The daemon comes back on its address: the host is read again.
        w.second.port = int(address.rsplit(":", 1)[1])
        await w.second.start()
        for _ in range(50):
            observed = await observer.observe()
            if observed.hosts["host2"].reachable:
                break
            await asyncio.sleep(0.2)
        assert observed.hosts["host2"].reachable
        assert len(observed.instances) == 2


async def test_each_launch_and_delete_goes_to_its_host_s_daemon(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as w:
        await w.c.controller.observer.observe()  # connects both hosts
        executor = w.c.controller.executor
        executor.limits = ExecutorLimits(call_timeout=5.0, attempts=1)
        on_two = f"web-{HASH}-host2-0"
        task = asyncio.create_task(
            executor.run_action(SPEC, Action(ActionKind.LAUNCH, on_two, "test", host="host2"))
        )
        for _ in range(100):
            await asyncio.sleep(0.02)
            w.sim.advance(5, step=5)
            w.second.tick()
            if task.done():
                break
        result = await task
        assert result.ok, result
        assert on_two in w.second_state.instances
        assert on_two not in w.first_state.instances
        [deleted] = await executor.execute(
            SPEC, [Action(ActionKind.DELETE, on_two, "test", host="host2")]
        )
        assert deleted.ok
        assert on_two not in w.second_state.instances or (
            w.second_state.instances[on_two].state.value == "DELETED"
        )
        [nowhere] = await executor.execute(
            SPEC, [Action(ActionKind.LAUNCH, f"web-{HASH}-host7-0", "test", host="host7")]
        )
        assert not nowhere.ok and nowhere.temporary and "host7" in (nowhere.error or "")


async def test_a_host_edit_wakes_the_watch(tmp_path: Path) -> None:
    async with two_hosts(tmp_path) as w:
        observer = w.c.controller.observer
        await observer.observe()
        watch = asyncio.create_task(observer.wait_for_host_change())
        await asyncio.sleep(0.2)
        assert not watch.done()
        await w.c.nomad.put_var(
            host_path(DEFAULT_PREFIX, "host2"),
            {"address": w.second.address, "server_cert": "bad", "cordoned": "maybe"},
        )
        await asyncio.wait_for(watch, 10)
        observed = await observer.observe()
        two = observed.hosts["host2"]
        assert not two.reachable and two.error is not None
        assert "server_cert: is not a PEM certificate" in two.error
        assert "cordoned: 'maybe' is not a boolean" in two.error
        assert observed.hosts["host1"].reachable


@pytest.fixture(autouse=True)
def _quiet_grpc_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", "grpc")
