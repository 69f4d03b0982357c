"""`reconciler sim`: both simulators on loopback until stopped."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reconciler.clock import ScaledClock, SystemClock
from reconciler.errors import ConfigError
from reconciler.pools import DEFAULT_PREFIX
from reconciler.sim.faults import parse_fault_flag
from reconciler.sim.multipass_state import HostCapacity
from reconciler.sim.nomad_state import Policy
from reconciler.sim.world import SimConfig, Simulation
from reconciler.units import parse_size

T = TypeVar("T")
# Each simulated host is a gRPC server and a TLS front in this one process.
MAX_HOSTS = 64


def shell_exports(env: dict[str, str]) -> str:
    return "\n".join(f"export {key}={value!r}" for key, value in env.items())


async def run_sim_command(args: argparse.Namespace) -> int:
    faults = _parse_all(args.fault, parse_fault_flag)
    jobs = _parse_all(args.job, parse_job_flag)
    config = sim_config_from_args(args)
    clock = ScaledClock(speed=args.speed)
    state_dir = Path(args.state_dir) if args.state_dir else None
    # --speed hastens the cluster (boots, heartbeats, drains), not Nomad's lock
    # timers: a `reconciler run` outside renews its lease on real time, as against
    # a real Nomad, so the lock's TTL must run on real time too. For the same reader
    # the times on the wire are wall-clock moments: it measures a node's downtime or
    # an instance's age against its own clock.
    simulation = Simulation(
        config,
        clock,
        state_dir=state_dir,
        lock_clock=SystemClock(),
        wire_time=clock.wall_time,
    )
    async with simulation as sim:
        for endpoint, fault in faults:
            sim.faults.set(endpoint, fault)
        sim.run_ticker()
        for job in jobs:
            sim.nomad_state.run_job(**job)  # placed where there is room, else blocked
        env = sim.environment()
        if args.acl:
            env["NOMAD_TOKEN"] = sim.nomad_state.add_token(Policy(management=True))
        print("# multipass-reconciler simulators are running; paste these into a shell:")
        print(shell_exports(env))
        if len(sim.hosts) > 1:
            # The reconciler reads the hosts from their variables; the MULTIPASS_* lines
            # above are host1's, for tools that talk to one daemon.
            print(f"# hosts: {' '.join(sim.hosts)}")
            print(f"# host variables: {' '.join(sim.host_variables())}")
        print("# Ctrl-C stops them.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    print("simulators stopped", file=sys.stderr)
    return 0


def sim_config_from_args(args: argparse.Namespace) -> SimConfig:
    """The simulation `reconciler sim`'s flags ask for; a bad value is a ConfigError naming it."""
    for flag, rate in (
        ("--never-join", args.never_join),
        ("--launch-failure", args.launch_failure),
    ):
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{flag}: {rate} is not a fraction between 0 and 1")
    for flag, seconds in (
        ("--boot-seconds", args.boot_seconds),
        ("--prepare-seconds", args.prepare_seconds),
    ):
        if seconds < 0:
            raise ConfigError(f"{flag}: {seconds} must not be negative")
    if args.host_cpus < 1:
        raise ConfigError(f"--host-cpus: {args.host_cpus} must be at least 1")
    if not 1 <= args.hosts <= MAX_HOSTS:
        raise ConfigError(f"--hosts: {args.hosts} must be between 1 and {MAX_HOSTS}")
    prefix = (args.prefix or os.environ.get("RECONCILER_PREFIX") or DEFAULT_PREFIX).strip("/")
    return SimConfig(
        seed=args.seed,
        boot_seconds=args.boot_seconds,
        prepare_seconds=args.prepare_seconds,
        acl=args.acl,
        nomad_port=args.nomad_port,
        multipass_port=args.multipass_port,
        never_join=args.never_join,
        launch_failure=args.launch_failure,
        capacity=HostCapacity(
            cpus=args.host_cpus,
            memory=_size("--host-memory", args.host_memory),
            disk=_size("--host-disk", args.host_disk),
        ),
        hosts=args.hosts,
        prefix=prefix,
    )


def _size(flag: str, text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    if size <= 0:
        raise ConfigError(f"{flag}: {text!r} must be more than zero")
    return size


def _parse_all(texts: list[str], parse: Callable[[str], T]) -> list[T]:
    """Every flag parsed, a bad one a ConfigError naming it (before anything starts)."""
    try:
        return [parse(text) for text in texts]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


JOB_KEYS = {"count": int, "cpu": int, "memory": int, "node_class": str, "type": str}


def parse_job_flag(text: str) -> dict[str, Any]:
    """``NAME:count=4,cpu=500,memory=512[,node_class=web,type=service]`` for ``sim --job``."""
    name, sep, opts = text.partition(":")
    if not name or not sep:
        raise ValueError(f"--job {text!r}: expected NAME:count=N,cpu=MHZ,memory=MB")
    job: dict[str, Any] = {"job_id": name}
    for part in filter(None, (p.strip() for p in opts.split(","))):
        key, _, value = part.partition("=")
        if key not in JOB_KEYS:
            raise ValueError(
                f"--job {text!r}: unknown option {key!r}; allowed: {', '.join(JOB_KEYS)}"
            )
        try:
            job[{"cpu": "cpu_mhz", "memory": "memory_mb"}.get(key, key)] = JOB_KEYS[key](value)
        except ValueError:
            raise ValueError(f"--job {text!r}: {key}={value!r} is not a whole number") from None
    return job
