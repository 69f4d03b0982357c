"""`reconciler demo`: the whole loop on the embedded simulators, start to finish.

It starts the simulators (real servers on loopback, a clock running 20 times
faster than real time: one Nomad and three Multipass hosts), writes a pool
variable, and shows the reconciler bring the pool to its spec, spread over the
hosts; then edits the spec (grow, shrink, a new image: a rolling replacement),
powers one host off (its members are replaced on the others) and on again (the
surplus is removed), and shows it follow each time. The pool sets no `servers`:
its VMs join the servers the simulated Nomad lists (GET /v1/status/peers). Every
step prints the dry-run diff first, then converges; the end shows the pool's
status variable.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TextIO

from reconciler.app import connect, print_plans
from reconciler.clock import ScaledClock
from reconciler.controller import Controller
from reconciler.nomad.settings import NomadSettings
from reconciler.plan import Plan
from reconciler.pools import DEFAULT_PREFIX, pool_path, status_path
from reconciler.settings import Settings
from reconciler.sim.world import SimConfig, Simulation
from reconciler.status import read_status_table

SPEED = 20.0
POOL = "web"
HOSTS = 3
LOST_HOST = "host2"


async def run_demo(seed: int = 7, out: TextIO | None = None, speed: float = SPEED) -> int:
    out = out or sys.stdout
    started = time.monotonic()
    clock = ScaledClock(speed=speed)
    config = SimConfig(
        seed=seed, boot_seconds=40, heartbeat_timeout=30, migrate_seconds=20, hosts=HOSTS
    )
    async with Simulation(config, clock) as sim:
        sim.run_ticker(interval=0.05)
        settings = Settings(
            prefix=DEFAULT_PREFIX,
            nomad=NomadSettings(address=sim.nomad.address),
            env=sim.environment(),
        )
        say = _printer(out, started)
        daemons = ", ".join(f"{h.name} {h.address}" for h in sim.hosts.values())
        say(f"simulators up: Nomad {sim.nomad.address}, multipassd (TLS) on {daemons}")
        async with connect(settings, clock=clock) as c:
            path = pool_path(DEFAULT_PREFIX, POOL)
            # Each label says what the step does; the command after it is the edit itself.
            rolled = {"min": "3", "max": "6", "image": "22.04"}
            steps: list[tuple[str, dict[str, str] | None, str | None]] = [
                ("create a pool of 3 members, one per host", {"min": "3", "max": "6"}, None),
                ("grow it to 6 members (3 more launches)", {"min": "6", "max": "6"}, None),
                (
                    "shrink it to 3 members (3 drained, their work moved, then deleted)",
                    {"min": "3", "max": "6"},
                    None,
                ),
                ("roll it to image 22.04 (each member replaced, the new one first)", rolled, None),
                (
                    f"power {LOST_HOST} off: its member's node goes down, and once down for "
                    "unhealthy_timeout it is replaced on another host",
                    None,
                    "power-off",
                ),
                (
                    f"power {LOST_HOST} on: its member is back, and the surplus is removed",
                    None,
                    "power-on",
                ),
            ]
            for number, (title, sizing, host_action) in enumerate(steps, 1):
                if sizing is not None:
                    items = {**sizing, "drain_deadline": "5m", "unhealthy_timeout": "60s"}
                    edit = " ".join(f"{k}={v}" for k, v in items.items())
                    say(f"step {number}: {title}: nomad var put {path} {edit}")
                    await c.nomad.put_var(path, items)
                else:
                    say(
                        f"step {number}: {title}: reconciler sim ctl host {LOST_HOST} {host_action}"
                    )
                    await sim.host_action(LOST_HOST, str(host_action))
                if host_action == "power-off":
                    await _until(c.controller, POOL, lambda p: bool(p.counts.get("lost")))
                elif host_action == "power-on":
                    # Converged then means with host2 read again, not merely waited on.
                    await _until(c.controller, POOL, lambda p: not p.waiting_on_hosts)
                if number == 2:
                    # Give the pool some work so the drains in step 3 have allocations to move.
                    sim.nomad_state.run_job("api", count=4, cpu_mhz=500, memory_mb=512)
                plans, _ = await c.controller.plan_all(POOL)
                print_plans(plans, "text", out)
                report = await c.controller.reconcile_until_converged(POOL, timeout=1200, poll=5)
                if not report.converged:
                    say(f"step {number}: did not converge: {report.error or 'see the plan above'}")
                    return 1
                say(f"step {number}: converged")
                _show_world(sim, out)
            say(f"reconciler status (from {DEFAULT_PREFIX}/status/{POOL}):")
            items = dict((await c.nomad.get_var(status_path(DEFAULT_PREFIX, POOL))).items)
            out.write(read_status_table({POOL: items}) + "\n")
        say("demo finished: the pool followed every edit of its spec and the loss of a host")
    return 0


def _printer(out: TextIO, started: float) -> Callable[[str], None]:
    def say(text: str) -> None:
        out.write(f"[{time.monotonic() - started:5.1f}s] {text}\n")
        out.flush()

    return say


async def _until(
    controller: Controller, pool: str, check: Callable[[Plan], bool], timeout: float = 60.0
) -> None:
    """Wait (real seconds, at most ``timeout``) until the pool's plan passes ``check``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        plans, _ = await controller.plan_all(pool)
        if any(pp.plan is not None and check(pp.plan) for pp in plans):
            return
        await asyncio.sleep(0.25)


def _show_world(sim: Simulation, out: TextIO) -> None:
    nodes = {n.name: n for n in sim.nomad_state.nodes.values()}
    live_allocs: dict[str, int] = {}
    for a in sim.nomad_state.allocs.values():
        if a.live:
            live_allocs[a.node_id] = live_allocs.get(a.node_id, 0) + 1
    out.write(
        "  host    instance                  state     node status  eligibility  allocations\n"
    )
    for host in sim.hosts.values():
        if not host.powered:
            out.write(f"  {host.name:<7} (powered off)\n")
        for name, inst in sorted(host.state.instances.items()):
            node = nodes.get(name)
            status = node.status if node else "-"
            elig = node.eligibility if node else "-"
            allocs = live_allocs.get(node.id, 0) if node else 0
            out.write(
                f"  {host.name:<7} {name:<25} {inst.state.value:<9} {status:<12} {elig:<12} "
                f"{allocs}\n"
            )
    out.write("\n")
