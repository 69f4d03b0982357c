"""A pool from 0 to N members over H hosts: how many launch times it takes.

    python benchmarks/fleet_launch.py               # N = 12 over 1, 2 and 3 hosts
    python benchmarks/fleet_launch.py --members 24 --hosts 1 2 4

Launches in flight are bounded per daemon (`max_parallel_launches`, default 2:
multipassd has crashed under ten parallel launches, canonical/multipass#3336), so
0 -> N over H hosts should take about ceil(N / (H x 2)) launch times (one host
without a host variable: launch_concurrency, 3). The
simulators run in this process (a multipassd per host over gRPC and TLS, one
Nomad over HTTP, on a clock 20x real time) with the real controller, and each
launch takes the simulated boot time. Printed per host count: the simulated
seconds from the pool's creation until every member's launch has returned, that
in launch times, the most launches seen in flight on one daemon, and the bound.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

from reconciler.app import connect
from reconciler.clock import ScaledClock
from reconciler.nomad.settings import NomadSettings
from reconciler.pools import DEFAULT_PREFIX, pool_path
from reconciler.settings import Settings
from reconciler.sim.world import SimConfig, Simulation

BOOT = 40.0
SPEED = 20.0
PER_HOST = 2  # the host variable's max_parallel_launches default
# One host is the simulator without host variables: the implicit host `default`,
# bounded by the executor's launch_concurrency as before hosts.
IMPLICIT = 3


async def fill(members: int, hosts: int) -> tuple[float, int]:
    """Simulated seconds until ``members`` launches returned, and the most in flight on one host."""
    clock = ScaledClock(speed=SPEED)
    config = SimConfig(seed=1, boot_seconds=BOOT, heartbeat_timeout=30, hosts=hosts)
    async with Simulation(config, clock) as sim:
        sim.run_ticker(interval=0.05)
        settings = Settings(
            prefix=DEFAULT_PREFIX,
            nomad=NomadSettings(address=sim.nomad.address),
            env=sim.environment(),
        )
        async with connect(settings, clock=clock) as c:
            items = {
                "min": str(members),
                "max": str(members),
                "cloud_init_vars": "servers: [10.0.0.2]",
            }
            await c.nomad.put_var(pool_path(DEFAULT_PREFIX, "bench"), items)
            started = clock.monotonic()
            most = 0
            while True:
                await c.controller.reconcile_once(wait_actions=False)
                launching = [
                    sum(1 for i in h.state.instances.values() if not i.guest_up)
                    + len(h.state.preparing)
                    for h in sim.hosts.values()
                ]
                most = max(most, *launching)
                booted = sum(
                    1 for h in sim.hosts.values() for i in h.state.instances.values() if i.guest_up
                )
                if booted >= members:
                    return clock.monotonic() - started, most
                await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=12)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    print(
        f"{'hosts':>5} {'members':>7} {'sim seconds':>11} {'launch times':>12} "
        f"{'expected':>8} {'most in flight':>14}"
    )
    for hosts in args.hosts:
        wall = time.monotonic()
        seconds, most = asyncio.run(fill(args.members, hosts))
        expected = math.ceil(args.members / (hosts * PER_HOST if hosts > 1 else IMPLICIT))
        print(
            f"{hosts:>5} {args.members:>7} {seconds:>11.0f} {seconds / BOOT:>12.1f} "
            f"{expected:>8} {most:>14}   ({time.monotonic() - wall:.0f}s real)"
        )


if __name__ == "__main__":
    main()
