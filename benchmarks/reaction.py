"""Reaction time and idle cost of `reconciler run`, end to end, by number of pools.

    python benchmarks/reaction.py                 # 1, 20 and 100 pools of 5 members
    python benchmarks/reaction.py --pools 20 --samples 20

For each pool count the simulators run in this process (Nomad over HTTP,
multipassd over gRPC, on a clock 10x real time) with every pool already at its
5 ready members; `reconciler run` runs as a child process, as it would in
production. Then, one sample at a time, a pool variable is written over the
HTTP API (the pools sampled spread evenly over the names) and the time is taken
until:

* **drain**: the first drain of one of that pool's nodes reaches Nomad
  (``min`` 5 -> 4), and
* **launch**: the first launch RPC for that pool reaches multipassd
  (``min`` 4 -> 5, the pool put back).

Each sample waits until its pool has settled (nothing booting, draining or
being deleted) and the controller has had a moment to finish its pass, so a
sample measures reaction from idle. Printed: p50 and p95 of each, one loopback
round trip (an HTTP node list, a gRPC instance list, both empty, from this
process) and the ratio of the p50 to the HTTP round trip; then the Nomad requests per minute of
the idle controller (before the samples, over ``--idle-seconds``), its RSS, the
CPU it used per sample (``cpu``, ms: every pass and action of the samples, the
reconciler's own work whatever else the machine runs) and, with ``--pass-times``,
the mean time of its passes during the samples (reads and planning, from its
/metrics).

With ``REACTION_PROFILE=/tmp/run.prof`` the controller runs under cProfile and
leaves ``/tmp/run.prof.<pools>`` for each pool count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from reconciler import ownership
from reconciler.clock import ScaledClock
from reconciler.multipass.client import MultipassClient
from reconciler.nomad.client import NomadClient
from reconciler.nomad.settings import NomadSettings
from reconciler.pools import DEFAULT_PREFIX, pool_path
from reconciler.settings import Settings
from reconciler.sim.multipass_state import GiB, HostCapacity
from reconciler.sim.world import SimConfig, Simulation
from reconciler.spec import parse_pool_spec

SPEED = 10.0
MEMBERS = 5
RESYNC = 30.0


def pool_items(size: int) -> dict[str, str]:
    return {"min": str(size), "max": "10", "cloud_init_vars": "servers: [10.0.0.2]"}


def pool_names(n: int) -> list[str]:
    return [f"p{i:03d}" for i in range(n)]


@dataclass
class Arrivals:
    """The first launch RPC and drain request per pool, seen where they arrive."""

    waiting: dict[tuple[str, str], asyncio.Future[float]] = field(default_factory=dict)

    def expect(self, kind: str, pool: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[(kind, pool)] = future
        return future

    def seen(self, kind: str, name: str) -> None:
        parsed = ownership.parse_instance_name(name)
        if parsed is None:
            return
        future = self.waiting.pop((kind, parsed[0]), None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())


def hook(sim: Simulation, arrivals: Arrivals) -> None:
    """Note launch RPCs and drains as the simulators receive them (wrapping, not editing)."""
    state = sim.multipass_state
    begin_launch = state.begin_launch

    def noted_launch(name: str, *args: Any, **kwargs: Any) -> None:
        arrivals.seen("launch", name)
        begin_launch(name, *args, **kwargs)

    state.begin_launch = noted_launch  # type: ignore[method-assign]
    nomad = sim.nomad_state
    update_drain = nomad.update_drain

    def noted_drain(node_id: str, *args: Any, **kwargs: Any) -> int:
        node = nomad.nodes.get(node_id)
        if node is not None and args and args[0] is not None:
            arrivals.seen("drain", node.name)
        return update_drain(node_id, *args, **kwargs)

    nomad.update_drain = noted_drain  # type: ignore[method-assign]


def seed_world(sim: Simulation, pools: list[str]) -> None:
    """Every pool at MEMBERS ready members, as if the controller had built them."""
    for pool in pools:
        spec = parse_pool_spec(pool, pool_items(MEMBERS), index=1)
        for i in range(MEMBERS):
            name = ownership.instance_name(pool, spec.template_hash, i)
            sim.multipass_state.begin_launch(name)
            sim.multipass_state.create(name, "24.04", 2, 2 * GiB, 10 * GiB, "")
            sim.nomad_state.register_node(
                name,
                node_class=pool,
                meta={ownership.META_POOL: pool, ownership.META_TEMPLATE_HASH: spec.template_hash},
            )


def settled(sim: Simulation, pool: str, size: int) -> bool:
    """The pool has ``size`` running instances, each a ready, eligible, undrained node."""
    prefix = pool + "-"
    if any(n.startswith(prefix) for n in sim.multipass_state.preparing):
        return False
    names = {
        name
        for name, inst in sim.multipass_state.instances.items()
        if name.startswith(prefix) and inst.state.name == "RUNNING"
    }
    if len(names) != size or any(
        name.startswith(prefix) and name not in names for name in sim.multipass_state.instances
    ):
        return False
    ready = {
        n.name
        for n in sim.nomad_state.nodes.values()
        if n.name in names and n.status == "ready" and n.eligibility == "eligible" and not n.drain
    }
    return ready == names


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


async def round_trips(nomad: NomadClient, multipass: MultipassClient) -> tuple[float, float]:
    """Median seconds of one HTTP node list and one gRPC instance list over loopback."""
    http, grpc = [], []
    for _ in range(30):
        start = time.perf_counter()
        await nomad.list_nodes()
        http.append(time.perf_counter() - start)
        start = time.perf_counter()
        await multipass.list_instances()
        grpc.append(time.perf_counter() - start)
    return statistics.median(http), statistics.median(grpc)


def cpu_seconds(pid: int) -> float:
    """User and system CPU the process has used: its own work, whatever else runs."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Result:
    pools: int
    launch: list[float]
    drain: list[float]
    http_rtt: float
    grpc_rtt: float
    requests_per_min: float
    requests_by_route: dict[str, float]
    rss_mb: float
    pass_ms: float  # mean read + plan time of the passes during the samples
    cpu_ms: float  # the controller's CPU per sample (its passes and actions), ms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def pass_seconds(port: int) -> tuple[float, float]:
    """Seconds spent in the controller's passes so far (reads and planning), and passes."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    values = {}
    for line in text.splitlines():
        name = line.split(" ")[0]
        if name.endswith(("reconcile_pass_seconds_sum", "reconcile_pass_seconds_count")):
            values[name.rsplit("_", 1)[-1]] = float(line.split()[-1])
    return values.get("sum", 0.0), values.get("count", 0.0)


async def measure(n_pools: int, samples: int, idle_seconds: float, pass_times: bool) -> Result:
    config = SimConfig(
        boot_seconds=4.0,
        node_init_seconds=1.0,
        heartbeat_timeout=10.0,
        capacity=HostCapacity(cpus=10**6, memory=10**6 * GiB, disk=10**7 * GiB),
    )
    pools = pool_names(n_pools)
    arrivals = Arrivals()
    async with Simulation(config, ScaledClock(speed=SPEED)) as sim:
        sim.run_ticker(0.05)
        env = {**os.environ, **sim.environment()}
        settings = Settings(prefix=DEFAULT_PREFIX, nomad=NomadSettings(address=sim.nomad.address))
        async with NomadClient(settings.nomad) as nomad:
            multipass_settings = await Settings(
                prefix=DEFAULT_PREFIX, nomad=settings.nomad, env=sim.environment()
            ).resolve_multipass(nomad)
            async with MultipassClient(multipass_settings) as multipass:
                # Of empty lists: what one trip over loopback costs, whatever the world.
                http_rtt, grpc_rtt = await round_trips(nomad, multipass)
            seed_world(sim, pools)
            hook(sim, arrivals)
            for pool in pools:
                await nomad.put_var(pool_path(DEFAULT_PREFIX, pool), pool_items(MEMBERS))
            await until(lambda: all(settled(sim, p, MEMBERS) for p in pools), 60, "nodes ready")
            metrics_port = free_port()
            profile = os.environ.get("REACTION_PROFILE")
            profiler = ["-m", "cProfile", "-o", f"{profile}.{n_pools}"] if profile else []
            controller = await asyncio.create_subprocess_exec(
                sys.executable,
                *profiler,
                "-m",
                "reconciler",
                "run",
                "--no-leader-election",
                f"--resync={RESYNC}",
                *([f"--metrics-addr=127.0.0.1:{metrics_port}"] if pass_times else []),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
            )
            try:
                status_prefix = f"{DEFAULT_PREFIX}/status/"

                async def statuses() -> int:
                    return len((await nomad.list_vars(status_prefix)).value)

                deadline = time.monotonic() + 120
                while await statuses() < n_pools:
                    if time.monotonic() > deadline:
                        raise SystemExit("the controller wrote no status for every pool")
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # the first passes' writes settle
                before = dict(sim.nomad.requests)
                await asyncio.sleep(idle_seconds)
                after = dict(sim.nomad.requests)
                by_route = {
                    route: (after[route] - before.get(route, 0)) * 60 / idle_seconds
                    for route in after
                    if after[route] != before.get(route, 0)
                }
                rss = rss_mb(controller.pid)
                passes_before = await pass_seconds(metrics_port) if pass_times else (0.0, 0.0)
                cpu_before = cpu_seconds(controller.pid)
                launch, drain = await react(sim, nomad, arrivals, pools, samples)
                cpu_ms = 1000 * (cpu_seconds(controller.pid) - cpu_before) / (2 * samples)
                pass_ms = float("nan")
                if pass_times:
                    passes_after = await pass_seconds(metrics_port)
                    passes = passes_after[1] - passes_before[1]
                    pass_ms = 1000 * (passes_after[0] - passes_before[0]) / max(1, passes)
            finally:
                controller.send_signal(signal.SIGTERM)
                await controller.wait()
    return Result(
        n_pools,
        launch,
        drain,
        http_rtt,
        grpc_rtt,
        sum(by_route.values()),
        by_route,
        rss,
        pass_ms,
        cpu_ms,
    )


async def react(
    sim: Simulation, nomad: NomadClient, arrivals: Arrivals, pools: list[str], samples: int
) -> tuple[list[float], list[float]]:
    """``samples`` drains (5 -> 4) and as many launches (4 -> 5), from an idle controller."""
    launch: list[float] = []
    drain: list[float] = []
    sizes = dict.fromkeys(pools, MEMBERS)
    # Spread over the names: a pass plans pools in name order, and an edited pool's
    # actions start once it is planned, so the first pools alone would flatter.
    chosen = [pools[i * len(pools) // samples] for i in range(samples)]
    for k in range(2 * samples):
        pool = chosen[(k // 2) % len(chosen)]
        kind, size = ("drain", MEMBERS - 1) if sizes[pool] == MEMBERS else ("launch", MEMBERS)
        await until(lambda p=pool: settled(sim, p, sizes[p]), 60, f"pool {pool} to settle")
        await asyncio.sleep(0.5)  # the controller finishes the pass that saw it settle
        seen = arrivals.expect(kind, pool)
        start = time.perf_counter()
        await nomad.put_var(pool_path(DEFAULT_PREFIX, pool), pool_items(size))
        try:
            at = await asyncio.wait_for(seen, 60)
        except TimeoutError:
            raise SystemExit(f"no {kind} for pool {pool} within 60s") from None
        (drain if kind == "drain" else launch).append(at - start)
        sizes[pool] = size
    return launch, drain


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else 0.0


def report(r: Result) -> str:
    ms = 1000.0
    lp50, dp50 = statistics.median(r.launch), statistics.median(r.drain)
    return (
        f"{r.pools:>5} {lp50 * ms:>8.1f} {p95(r.launch) * ms:>8.1f} "
        f"{dp50 * ms:>8.1f} {p95(r.drain) * ms:>8.1f} "
        f"{r.http_rtt * ms:>6.2f} {r.grpc_rtt * ms:>6.2f} "
        f"{lp50 / r.http_rtt:>6.0f}x {dp50 / r.http_rtt:>6.0f}x "
        f"{r.requests_per_min:>8.1f} {r.rss_mb:>6.0f} {r.cpu_ms:>6.1f} {r.pass_ms:>7.1f}"
    )


HEADER = (
    f"{'pools':>5} {'launch50':>8} {'launch95':>8} {'drain50':>8} {'drain95':>8} "
    f"{'http':>6} {'grpc':>6} {'l50/rt':>7} {'d50/rt':>7} {'req/min':>8} {'rssMB':>6} "
    f"{'cpu':>6} {'passms':>7}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[1, 20, 100])
    parser.add_argument("--samples", type=int, default=12, help="drains and launches, each")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--routes", action="store_true", help="idle requests per route")
    parser.add_argument(
        "--pass-times",
        action="store_true",
        help="run the controller with --metrics-addr and print its mean pass time during the "
        "samples (its RSS then includes the metrics server)",
    )
    args = parser.parse_args()
    print(f"times in ms; {MEMBERS} members per pool; resync {RESYNC:.0f}s; sim speed {SPEED:g}x")
    print(HEADER, flush=True)
    for n in args.pools:
        result = asyncio.run(measure(n, args.samples, args.idle_seconds, args.pass_times))
        print(report(result), flush=True)
        if args.routes:
            for route, rate in sorted(result.requests_by_route.items()):
                print(f"{'':>8}{rate:>8.1f}/min  {route}")


if __name__ == "__main__":
    main()
