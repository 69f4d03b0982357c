"""`reconciler sim --speed N` for a reconciler outside, on wall time.

The world runs on a ScaledClock, N times faster than wall time, so its own readings run
ahead of the wall. The simulators put wall-clock moments on the wire
(``Simulation(wire_time=clock.wall_time)``): a node that went down says so with a
StatusUpdatedAt of about now, an instance's creation_timestamp is about when it was
launched, a drain's start and deadline are real moments. Durations inside stay sped up:
a drain with a deadline of D simulated seconds is forced D/N real seconds later.
Without a mapping (the demo, the tests) the wire carries the world's own times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from reconciler.clock import ScaledClock, TimeMap, same_time
from reconciler.multipass.client import MultipassClient
from reconciler.multipass.settings import MultipassSettings
from reconciler.nomad.client import NomadClient
from reconciler.nomad.settings import NomadSettings
from reconciler.sim.world import SimConfig, Simulation
from tests.integration.cli_sim import running_sim

SPEED = 10.0
USER_DATA = """#cloud-config
write_files:
  - path: /etc/nomad.d/client.hcl
    content: |
      client {
        enabled = true
        node_class = "web"
      }
runcmd:
  - systemctl enable --now nomad
"""
# Simulated seconds; a tenth of each passes in real time.
CONFIG = SimConfig(
    seed=3, boot_seconds=2.0, heartbeat_timeout=4.0, node_init_seconds=1.0, migrate_seconds=100.0
)
DEADLINE = 20.0  # a drain's, simulated seconds


def test_wall_time_of_a_scaled_clock() -> None:
    clock = ScaledClock(speed=SPEED, start=1_000.0)
    assert clock.wall_time(1_000.0) == 1_000.0
    assert clock.wall_time(1_100.0) == 1_010.0  # 100 s of the world: 10 s of the wall
    live = ScaledClock(speed=SPEED)
    time.sleep(0.2)
    assert live.now() - time.time() > 1.0  # the world is ahead...
    assert abs(live.wall_time(live.now()) - time.time()) < 0.05  # ...its now is the wall's


@contextlib.asynccontextmanager
async def scaled_sim(wire_time: Callable[[ScaledClock], TimeMap]) -> AsyncIterator[Simulation]:
    clock = ScaledClock(speed=SPEED)
    async with Simulation(CONFIG, clock, wire_time=wire_time(clock)) as sim:
        sim.run_ticker(interval=0.02)
        yield sim


@contextlib.asynccontextmanager
async def clients(sim: Simulation) -> AsyncIterator[tuple[MultipassClient, NomadClient]]:
    multipass = MultipassSettings(
        address=sim.multipassd.address,
        client_cert=sim.certs.client_cert.read_bytes(),
        client_key=sim.certs.client_key.read_bytes(),
        server_cert=sim.certs.root_cert.read_bytes(),
        passphrase=sim.config.passphrase,
    )
    async with (
        MultipassClient(multipass, call_timeout=3, attempts=1) as mp,
        NomadClient(NomadSettings(address=sim.nomad.address, timeout=3.0)) as nomad,
    ):
        yield mp, nomad


async def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def node_status(sim: Simulation, name: str) -> str | None:
    node = sim.nomad_state.find_node(name)
    return node.status if node else None


async def age_and_downtime(sim: Simulation) -> tuple[float, float]:
    """A VM launched after a while, joined, deleted, its node down: seen as a reader outside.

    Returns (creation_timestamp - wall time at launch, StatusUpdatedAt - wall time when the
    node was seen down), both as the reconciler's clients read them off the wire.
    """
    async with clients(sim) as (mp, nomad):
        await asyncio.sleep(1.0)  # the world is 9 s ahead of the wall now
        launched = time.time()
        result = await mp.launch(
            "web-abcde-0", image="24.04", cpus=1, memory="1G", disk="5G", user_data=USER_DATA
        )
        assert result.created
        [inst] = await mp.list_instances()
        assert inst.created_at is not None
        await until(lambda: node_status(sim, "web-abcde-0") == "ready")
        await mp.delete(["web-abcde-0"])
        await until(lambda: node_status(sim, "web-abcde-0") == "down")
        seen_down = time.time()
        sim_node = sim.nomad_state.find_node("web-abcde-0")
        assert sim_node is not None
        node = await nomad.get_node(sim_node.id)
        assert node.status == "down" and node.status_updated_at is not None
        return inst.created_at - launched, node.status_updated_at - seen_down


async def test_a_reconciler_on_wall_time_reads_wall_time_moments() -> None:
    async with scaled_sim(lambda clock: clock.wall_time) as sim:
        age, downtime = await age_and_downtime(sim)
    # creation_timestamp has nanoseconds; StatusUpdatedAt whole seconds (truncated).
    assert -0.1 < age < 1.0, f"created {age:+.2f}s from the wall time of the launch"
    assert -1.5 < downtime <= 0.1, f"went down {downtime:+.2f}s from the wall time"


async def test_without_a_mapping_the_wire_carries_the_worlds_own_times() -> None:
    """What a reconciler on wall time saw before: moments ~9x its clock's elapsed time ahead."""
    async with scaled_sim(lambda clock: same_time) as sim:
        age, downtime = await age_and_downtime(sim)
        assert abs(sim.clock.now() - time.time()) > 10.0
    assert age > 8.0  # "created" in the future: join_timeout would wait that much longer
    assert downtime > 10.0  # "down" in the future: unhealthy_timeout likewise


async def test_drain_times_are_wall_time_and_the_deadline_stays_sped_up() -> None:
    async with scaled_sim(lambda clock: clock.wall_time) as sim, clients(sim) as (_, nomad):
        state = sim.nomad_state
        node_id = state.register_node("web-abcde-1", node_class="web")
        state.run_job("app", count=1, node_class="web")  # migrates slower than the deadline
        await until(lambda: any(a.client_status == "running" for a in state.allocs.values()))
        await asyncio.sleep(0.5)  # the world is ahead of the wall
        started = time.time()
        await nomad.drain_node(node_id, deadline_s=DEADLINE, meta={"by": "test"})
        node = await nomad.get_node(node_id)
        strategy = node.drain_strategy
        assert strategy is not None and strategy.deadline == DEADLINE  # a duration: as sent
        assert strategy.started_at is not None and strategy.force_deadline is not None
        assert abs(strategy.started_at - started) < 0.5
        # Forced DEADLINE simulated seconds later: DEADLINE / SPEED real ones.
        assert abs(strategy.force_deadline - (started + DEADLINE / SPEED)) < 0.5
        await until(lambda: state.nodes[node_id].drain is None)
        forced = time.time()
        assert forced - started > 0.8 * DEADLINE / SPEED
        node = await nomad.get_node(node_id)
        last = node.last_drain
        assert last is not None and last.started_at is not None and last.updated_at is not None
        # LastDrain has whole seconds (truncated).
        assert -1.2 < last.started_at - started <= 0.5
        assert -1.2 < last.updated_at - forced <= 0.5


async def test_reconciler_sim_speed_puts_wall_time_on_the_wire() -> None:
    """The command itself: `reconciler sim --speed 10` maps, as a `reconciler run` beside needs."""
    with running_sim("--speed", str(SPEED)) as env:
        async with NomadClient(NomadSettings(address=env["NOMAD_ADDR"], timeout=3.0)) as nomad:
            await asyncio.sleep(1.0)  # the world is 9 s ahead of the wall now
            before = time.time()
            await nomad.put_var("wall/check", {"k": "v"})
            after = time.time()
            var = await nomad.get_var("wall/check")
    assert var.create_time is not None
    assert before - 0.1 < var.create_time < after + 0.1, var.create_time - after
