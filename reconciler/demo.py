"""`reconciler demo`: the whole loop on the embedded simulators, start to finish.

It starts both simulators (real servers on loopback, a clock running 20 times
faster than real time), writes a pool variable, and shows the reconciler bring
the pool to its spec; then edits the spec three times (grow, shrink, a new
image: a rolling replacement) and shows it follow. The pool sets no `servers`:
its VMs join the servers the simulated Nomad lists (GET /v1/status/peers). Every step prints the
dry-run diff first, then converges; the end shows the pool's status variable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from reconciler.app import connect, print_plans
from reconciler.clock import ScaledClock
from reconciler.nomad.settings import NomadSettings
from reconciler.pools import DEFAULT_PREFIX, pool_path, status_path
from reconciler.settings import Settings
from reconciler.sim.world import SimConfig, Simulation
from reconciler.status import read_status_table

SPEED = 20.0
POOL = "web"


async def run_demo(seed: int = 7, out: TextIO | None = None, speed: float = SPEED) -> int:
    out = out or sys.stdout
    started = time.monotonic()
    clock = ScaledClock(speed=speed)
    config = SimConfig(seed=seed, boot_seconds=40, heartbeat_timeout=30, migrate_seconds=20)
    async with Simulation(config, clock) as sim:
        sim.run_ticker(interval=0.05)
        settings = Settings(
            prefix=DEFAULT_PREFIX,
            nomad=NomadSettings(address=sim.nomad.address),
            env=sim.environment(),
        )
        say = _printer(out, started)
        say(f"simulators up: Nomad {sim.nomad.address}, multipassd {sim.multipassd.address} (TLS)")
        async with connect(settings, clock=clock) as c:
            path = pool_path(DEFAULT_PREFIX, POOL)
            # Each label says what the step does; the command after it is the edit itself.
            steps = [
                ("create a pool of 2 members (2 launches)", {"min": "2", "max": "5"}),
                ("grow it to 4 members (2 more launches)", {"min": "4", "max": "5"}),
                (
                    "shrink it to 2 members (2 drained, their work moved, then deleted)",
                    {"min": "2", "max": "2"},
                ),
                (
                    "roll it to image 22.04 (each member replaced, the new one first)",
                    {"min": "2", "max": "2", "image": "22.04"},
                ),
            ]
            for number, (title, sizing) in enumerate(steps, 1):
                items = {**sizing, "drain_deadline": "5m"}
                edit = " ".join(f"{k}={v}" for k, v in items.items())
                say(f"step {number}: {title}: nomad var put {path} {edit}")
                await c.nomad.put_var(path, items)
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
        say("demo finished: the pool followed every edit of its spec")
    return 0


def _printer(out: TextIO, started: float) -> Callable[[str], None]:
    def say(text: str) -> None:
        out.write(f"[{time.monotonic() - started:5.1f}s] {text}\n")
        out.flush()

    return say


def _show_world(sim: Simulation, out: TextIO) -> None:
    nodes = {n.name: n for n in sim.nomad_state.nodes.values()}
    live_allocs: dict[str, int] = {}
    for a in sim.nomad_state.allocs.values():
        if a.live:
            live_allocs[a.node_id] = live_allocs.get(a.node_id, 0) + 1
    out.write("  instance            state     node status  eligibility  allocations\n")
    for name, inst in sorted(sim.multipass_state.instances.items()):
        node = nodes.get(name)
        status = node.status if node else "-"
        elig = node.eligibility if node else "-"
        allocs = live_allocs.get(node.id, 0) if node else 0
        out.write(f"  {name:<19} {inst.state.value:<9} {status:<12} {elig:<12} {allocs}\n")
    out.write("\n")
