"""Planner time per plan and API reads per reconcile pass, by pool size.

    python benchmarks/planner.py            # 10, 100, 1,000, 10,000 members
    python benchmarks/planner.py 10 100     # chosen sizes
    python benchmarks/planner.py --pass     # a pass's planning: 1 x 10,000, 100 x 100, 1,000 x 10
    python benchmarks/planner.py --pass --members 100   # the same split of a smaller world

A pass plans every pool against one observed world: ``--pass`` times planning
10,000 members split into 1, 100 or 1,000 pools (median of 7 passes, each pool
shrinking by 10% as above). Linear in world + pools, the three take about the
same time; a pass that scanned the world once per pool would grow with the pools.

Planner time is the median of repeated plan() calls on a converged pool of N
ready members (2 allocations each) with a scale-down of 10% pending, so the
plan has real work. Reads are counted on the simulators' servers during one
`plan` pass (observe + read pool variables) of the real client stack, twice:
for a steady pool (nothing to do: the constant cost of every pass) and for the
10% scale-down, where each node about to be drained is first read in full
(meta: protection, ownership), so those reads equal the drains planned.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from reconciler import ownership
from reconciler.model import Allocation, Instance, InstanceState, Node, NodeStatus, Observed
from reconciler.plan import ActionKind, Plan, group_by_pool, plan
from reconciler.spec import PoolSpec, parse_pool_spec

NOW = 1_700_000_000.0
SIZES = (10, 100, 1_000, 10_000)


def make_spec(n: int, pool: str = "bench") -> PoolSpec:
    desired = max(1, n - n // 10)
    items = {"min": str(desired), "max": str(n), "cloud_init_vars": "servers: [10.0.0.2]"}
    return parse_pool_spec(pool, items, index=1)


def make_world(spec: PoolSpec, n: int) -> Observed:
    return merge([pool_world(spec, n)])


def merge(worlds: list[Observed]) -> Observed:
    return Observed(
        tuple(i for w in worlds for i in w.instances),
        tuple(n for w in worlds for n in w.nodes),
        tuple(a for w in worlds for a in w.allocations),
        at=NOW,
    )


def pool_world(spec: PoolSpec, n: int) -> Observed:
    instances, nodes, allocs = [], [], []
    for i in range(n):
        name = ownership.instance_name(spec.pool, spec.template_hash, i)
        instances.append(Instance(name, InstanceState.RUNNING, created_at=NOW - 3600 - i))
        node = Node(
            id=f"node-{spec.pool}-{i}",
            name=name,
            status=NodeStatus.READY,
            cpu_mhz=4000,
            memory_mb=4096,
            meta={ownership.META_POOL: spec.pool},
        )
        nodes.append(node)
        for k in range(2):
            allocs.append(
                Allocation(
                    f"a-{node.id}-{k}", node.id, f"job{k}", cpu_mhz=100 + i % 7, memory_mb=128
                )
            )
    return Observed(tuple(instances), tuple(nodes), tuple(allocs), at=NOW)


def time_plan(n: int, repeats: int = 7) -> tuple[float, int]:
    spec = make_spec(n)
    world = make_world(spec, n)
    samples = []
    result = plan(spec, world, NOW)
    for _ in range(repeats):
        start = time.perf_counter()
        result = plan(spec, world, NOW)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), len(result.actions)


async def count_reads(n: int, desired: int) -> int:
    from reconciler.app import connect
    from reconciler.clock import ManualClock
    from reconciler.nomad.settings import NomadSettings
    from reconciler.pools import DEFAULT_PREFIX, pool_path
    from reconciler.settings import Settings
    from reconciler.sim.multipass_state import GiB, HostCapacity
    from reconciler.sim.world import SimConfig, Simulation

    config = SimConfig(capacity=HostCapacity(cpus=10**6, memory=10**6 * GiB, disk=10**7 * GiB))
    clock = ManualClock(NOW)
    async with Simulation(config, clock) as sim:
        spec = make_spec(n)
        for i in range(n):
            name = ownership.instance_name(spec.pool, spec.template_hash, i)
            sim.multipass_state.begin_launch(name)
            sim.multipass_state.create(name, "24.04", 1, GiB, GiB, "")
            sim.nomad_state.register_node(name, meta={ownership.META_POOL: spec.pool})
        # A minute of cluster life: the VMs boot and the nodes turn ready, so the
        # pool is healthy and the pass measured is a steady one or a plain scale-down.
        sim.advance(60, step=30)
        settings = Settings(
            prefix=DEFAULT_PREFIX,
            nomad=NomadSettings(address=sim.nomad.address),
            env=sim.environment(),
        )
        async with connect(settings, clock=clock) as c:
            await c.nomad.put_var(
                pool_path(DEFAULT_PREFIX, spec.pool),
                {
                    "min": str(desired),
                    "max": str(spec.max),
                    "cloud_init_vars": "servers: [10.0.0.2]",
                },
            )
            before = sum(sim.nomad.requests.values()) + sum(sim.multipassd.calls.values())
            plans, _ = await c.controller.plan_all()
            after = sum(sim.nomad.requests.values()) + sum(sim.multipassd.calls.values())
    # The count means something only for the pass it claims to measure: a world the
    # planner judged unhealthy (or short-circuited) would be measured silently otherwise.
    [pool_plan] = plans
    assert pool_plan.plan is not None, pool_plan.problems or pool_plan.error
    drains = [a for a in pool_plan.plan.actions if a.kind is ActionKind.DRAIN]
    expected = n - desired
    if len(pool_plan.plan.actions) != expected or len(drains) != expected:
        raise SystemExit(
            f"{n} members, desired {desired}: expected {expected} drains, the pass planned "
            f"{[a.kind.value for a in pool_plan.plan.actions]} {pool_plan.plan.notes}"
        )
    return after - before


def time_pass(pools: int, members: int, repeats: int = 7) -> tuple[float, int]:
    """Median seconds to plan every pool of a world of ``pools`` x ``members``; actions."""
    specs = [make_spec(members, f"pool{p:04d}") for p in range(pools)]
    world = merge([pool_world(spec, members) for spec in specs])
    samples, actions = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        plans = plan_pass(specs, world)
        samples.append(time.perf_counter() - start)
        actions = sum(len(p.actions) for p in plans)
    return statistics.median(samples), actions


def plan_pass(specs: list[PoolSpec], world: Observed) -> list[Plan]:
    """As the controller plans a pass: the world grouped by pool once, then each pool."""
    worlds = group_by_pool(world)
    return [plan(spec, world, NOW, world=worlds.get(spec.pool)) for spec in specs]


def main_pass(total: int) -> None:
    print(f"{'pools x members':>16} {'pass plan median':>17} {'actions':>8}")
    for pools in (1, 100, 1_000):
        members = max(1, total // pools)
        seconds, actions = time_pass(pools, members)
        print(f"{f'{pools} x {members}':>16} {seconds * 1000:>15.1f}ms {actions:>8}", flush=True)


def main(sizes: tuple[int, ...]) -> None:
    print(
        f"{'members':>8} {'plan median':>12} {'actions':>8} {'reads steady':>13} "
        f"{'reads scale-down':>17}"
    )
    for n in sizes:
        seconds, actions = time_plan(n)
        steady = asyncio.run(count_reads(n, desired=n))
        shrinking = asyncio.run(count_reads(n, desired=make_spec(n).min))
        print(f"{n:>8} {seconds * 1000:>10.2f}ms {actions:>8} {steady:>13} {shrinking:>17}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("sizes", type=int, nargs="*", help=f"pool sizes (default: {SIZES})")
    parser.add_argument(
        "--pass",
        dest="pass_",
        action="store_true",
        help="time a pass's planning of one world split into 1, 100 and 1,000 pools",
    )
    parser.add_argument(
        "--members", type=int, default=10_000, help="with --pass: members in all (10,000)"
    )
    args = parser.parse_args()
    if args.pass_:
        main_pass(args.members)
    else:
        main(tuple(args.sizes) or SIZES)
