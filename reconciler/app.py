"""What each CLI command does, given parsed arguments. Output goes to stdout/stderr here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler import client_certs
from reconciler.clock import Clock, SystemClock
from reconciler.controller import Controller, PassReport, PoolPlan
from reconciler.diff import invalid_to_json, plan_to_json, render_text, use_colour
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.execute import ActionResult, Executor, ExecutorLimits
from reconciler.leadership import LeaderElector
from reconciler.logs import redact, redact_pem, scrub
from reconciler.multipass.client import MultipassClient
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import NotFound
from reconciler.observe import Observer
from reconciler.pools import DEFAULT_PREFIX, PoolSource, leader_path
from reconciler.render import render_cloud_init
from reconciler.settings import Settings, settings_from_args
from reconciler.spec import PoolSpec, SpecError, parse_pool_spec
from reconciler.status import StatusWriter, read_status_table
from reconciler.telemetry import HealthServer, Metrics

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


@dataclass
class Connected:
    settings: Settings
    nomad: NomadClient
    multipass: MultipassClient
    pools: PoolSource
    controller: Controller


@contextlib.asynccontextmanager
async def connect(
    settings: Settings,
    clock: Clock | None = None,
    limits: ExecutorLimits | None = None,
    *,
    write_status: bool = True,
    metrics: Metrics | None = None,
) -> AsyncIterator[Connected]:
    clock = clock or SystemClock()
    redact(settings.nomad.token)
    async with NomadClient(settings.nomad) as nomad:
        multipass_settings = await settings.resolve_multipass(nomad)
        redact(multipass_settings.passphrase)
        redact_pem(multipass_settings.client_key)
        async with MultipassClient(multipass_settings) as multipass:
            if metrics is not None:
                m = metrics
                nomad.on_call = lambda route, secs, err: m.api_call("nomad", route, secs, err)
                multipass.on_call = lambda rpc, secs, err: m.api_call("multipass", rpc, secs, err)
            pools = PoolSource(nomad, settings.prefix)
            executor = Executor(multipass, nomad, render_cloud_init, limits or ExecutorLimits())
            controller = Controller(
                pools,
                Observer(nomad, multipass, clock),
                executor,
                clock,
                resync=settings.resync,
                status=StatusWriter(nomad),
                write_status=write_status,
                metrics=metrics,
            )
            yield Connected(settings, nomad, multipass, pools, controller)


def print_plans(plans: list[PoolPlan], output: str, stream: Any = None) -> None:
    stream = stream or sys.stdout
    if output == "json":
        docs = [
            invalid_to_json(pp.pool, pp.variable.path, pp.variable.index, _problems(pp))
            if pp.plan is None or pp.spec is None
            else plan_to_json(pp.plan, pp.spec, pp.variable.path)
            for pp in plans
        ]
        json.dump({"pools": docs}, stream, indent=2, sort_keys=False)
        stream.write("\n")
        return
    colour = use_colour(stream)
    if not plans:
        stream.write("No pools found.\n")
    for pp in plans:
        if pp.plan is None or pp.spec is None:
            stream.write(f"Pool {pp.pool}  ({pp.variable.path} @ index {pp.variable.index})\n")
            what = "planning failed" if pp.error is not None else "invalid spec"
            stream.write(f"  {what}, no action planned:\n")
            for problem in _problems(pp):
                stream.write(f"    - {problem}\n")
            stream.write("\n")
            continue
        stream.write(render_text(pp.plan, pp.spec, pp.variable.path, colour=colour))
        stream.write("\n")


def _problems(pp: PoolPlan) -> list[str]:
    """Why a pool has no plan: its spec's problems, or the error its planning raised."""
    if pp.error is not None:
        return [scrub(f"planning failed: {pp.error}")]
    return list(pp.problems)


async def plan_command(args: argparse.Namespace) -> int:
    async with connect(settings_from_args(args), write_status=False) as c:
        c.controller.observer.check_images = True  # warn of an image the daemon lacks
        plans, _ = await c.controller.plan_all(args.pool)
    print_plans(plans, args.output)
    if any(pp.problems or pp.error for pp in plans):
        return EXIT_ERROR
    return EXIT_CHANGES if any(pp.plan and pp.plan.has_changes for pp in plans) else EXIT_OK


async def apply_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    async with connect(settings) as c:
        if not args.force:
            await _refuse_beside_a_leader(c.nomad, leader_path(settings.prefix))
        if args.wait:
            report = await c.controller.reconcile_until_converged(
                args.pool, timeout=args.timeout, progress=_progress_line(sys.stderr)
            )
        else:
            report = await c.controller.reconcile_once(args.pool)
    return print_apply_report(report, wait=args.wait)


def print_apply_report(report: PassReport, *, wait: bool) -> int:
    """What `apply` did, on stdout (errors on stderr); its exit code."""
    print_plans(report.plans, "text")
    for r in report.results:
        mark = _outcome(r)
        print(f"  {r.action.kind.value:<10} {r.action.instance}: {mark} ({r.duration:.1f}s)")
    if report.error:
        # An exception's text can quote a request: never let a secret reach the terminal.
        print(f"error: {scrub(report.error)}", file=sys.stderr)
        return EXIT_ERROR
    failed = any(pp.problems or pp.error for pp in report.plans)
    failed = failed or any(not r.ok for r in report.results)
    if wait and not report.converged:
        print("error: not converged before --timeout", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_ERROR if failed else EXIT_OK


def _outcome(r: ActionResult) -> str:
    if r.in_progress:
        return "in progress (the daemon is still launching it)"
    if r.ok:
        return "ok"
    return f"FAILED: {scrub(r.error or 'unknown error')}"


async def _refuse_beside_a_leader(nomad: NomadClient, path: str) -> None:
    """`apply` next to a running `reconciler run` would act twice on one pool: refuse."""
    try:
        leader = await nomad.get_var(path)
    except NotFound:
        return
    if leader.lock is not None:
        holder = leader.items.get("holder", "unknown")
        raise ConfigError(
            f"a `reconciler run` leads ({path} is locked by {holder}); it reconciles on its "
            "own, and apply would race it. Use `reconciler plan` to look, or --force"
        )


def _progress_line(stream: Any) -> Callable[[PassReport], None] | None:
    """On a terminal, one overwritten line per pass: what is ready, what is under way."""
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    passes = 0

    def show(report: PassReport) -> None:
        nonlocal passes
        passes += 1
        parts = []
        for pp in report.plans:
            if pp.plan is not None:
                c = pp.plan.counts
                parts.append(
                    f"{pp.pool}: {c['ready']}/{pp.plan.desired} ready, {c['pending']} pending, "
                    f"{c['draining'] + c['drained']} draining, {len(pp.plan.actions)} actions"
                )
        stream.write(f"\r\x1b[K pass {passes}: " + "; ".join(parts or ["waiting"]))
        stream.flush()
        if report.converged:
            stream.write("\n")

    return show


async def run_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    limits = ExecutorLimits(launch_concurrency=args.launch_concurrency)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not args.no_leader_election and not 10 <= args.leader_ttl <= 86400:
        raise ConfigError(
            f"--leader-ttl: {args.leader_ttl:g} is not within 10..86400 seconds "
            "(Nomad's bounds for a variable lock's TTL)"
        )
    if args.shutdown_grace <= 0:
        raise ConfigError(
            f"--shutdown-grace: {args.shutdown_grace:g} must be a positive number of seconds"
        )
    listen = parse_listen_address(args.metrics_addr) if args.metrics_addr else None
    clock = SystemClock()
    metrics = Metrics(clock)
    async with contextlib.AsyncExitStack() as stack:
        c = await stack.enter_async_context(
            connect(settings, clock=clock, limits=limits, metrics=metrics)
        )
        # Calls in flight get this long after SIGTERM; with the lock release it must
        # fit in the job's kill_timeout.
        c.controller.shutdown_grace = args.shutdown_grace
        if listen is not None:
            await stack.enter_async_context(HealthServer(metrics, *listen))
        if args.no_leader_election:
            metrics.set_leader(True)
            await c.controller.run(stop)
            return EXIT_OK

        def leadership_changed(leading: bool) -> None:
            metrics.set_leader(leading)
            c.controller.wake()

        elector = LeaderElector(
            c.nomad,
            leader_path(settings.prefix),
            clock,
            ttl=args.leader_ttl,
            lock_delay=args.leader_ttl,
            on_change=leadership_changed,
        )
        await lead(c.controller, elector, stop)
    return EXIT_OK


async def lead(controller: Controller, elector: LeaderElector, stop: asyncio.Event) -> None:
    """Campaign and reconcile until ``stop``; the lock goes only once the controller stopped.

    The elector has its own stop, set once ``controller.run`` returned, i.e. once
    no call of ours is in flight (or ``shutdown_grace`` ran out and they were
    cancelled). Until then it keeps renewing, so a standby cannot take over while
    this replica still acts.
    """
    controller.fence = elector.is_leader
    resign = asyncio.Event()
    campaign = asyncio.create_task(elector.run(resign))
    try:
        await controller.run(stop)
    finally:
        resign.set()
        await campaign  # releases the lock: a standby takes over at once


def parse_listen_address(text: str) -> tuple[str, int]:
    """`host:port` (or `:port` for every interface) for --metrics-addr."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--metrics-addr: {text!r} is not host:port, like 0.0.0.0:9100")
    return host.strip("[]") or "0.0.0.0", int(port)


async def status_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    prefix = f"{settings.prefix}/status/"
    async with NomadClient(settings.nomad) as nomad:
        if args.pool:
            paths = [prefix + args.pool]
        else:
            paths = sorted(m.path for m in (await nomad.list_vars(prefix)).value)
        statuses = {}
        for path in paths:
            try:
                statuses[path.removeprefix(prefix)] = dict((await nomad.get_var(path)).items)
            except NotFound:
                raise ConfigError(
                    f"no status at {path}: has `reconciler run` or `apply` reconciled this pool?"
                ) from None
    if args.output == "json":
        json.dump({"pools": statuses}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    elif not statuses:
        print("No pool status yet.")
    else:
        sys.stdout.write(read_status_table(statuses))
    return EXIT_OK


async def render_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    async with NomadClient(settings.nomad) as nomad:
        [variable] = await PoolSource(nomad, settings.prefix).load(args.pool)
    spec = parse_pool_spec(variable.pool, variable.items, variable.index)
    name = args.instance or f"{spec.pool}-{spec.template_hash}-0"
    sys.stdout.write(render_cloud_init(spec, name))
    return EXIT_OK


async def spec_command(args: argparse.Namespace) -> int:
    if args.file:
        pool, items = _items_from_file(Path(args.file))
        spec = _parse_or_report(pool, items, 0)
    else:
        settings = settings_from_args(args)
        async with NomadClient(settings.nomad) as nomad:
            [variable] = await PoolSource(nomad, settings.prefix).load(args.pool)
            spec = _parse_or_report(variable.pool, dict(variable.items), variable.index)
            if spec is not None:
                await _warn_of_image(settings, nomad, spec)
    if spec is None:
        return EXIT_ERROR
    print(f"pool {spec.pool}: valid (template hash {spec.template_hash})")
    return EXIT_OK


def _parse_or_report(pool: str, items: dict[str, str], index: int) -> PoolSpec | None:
    """The spec, or None with its problems printed on stderr."""
    try:
        return parse_pool_spec(pool, items, index)
    except SpecError as exc:
        print(f"pool {pool}: invalid spec:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None


async def _warn_of_image(settings: Settings, nomad: NomadClient, spec: PoolSpec) -> None:
    """Warn (on stderr) when the daemon's `find` does not list the pool's image.

    A warning, not an invalid spec: the spec is well-formed, and the daemon's
    catalogue can change (a new release, another remote). One that cannot be asked
    is said so, and nothing more.
    """
    try:
        multipass_settings = await settings.resolve_multipass(nomad)
        async with MultipassClient(multipass_settings) as multipass:
            catalogue = await multipass.find()
    except ReconcilerError as exc:
        print(f"warning: could not ask multipassd which images it offers: {exc}", file=sys.stderr)
        return
    if not catalogue.offers(spec.image):
        offered = ", ".join(sorted(n for n in catalogue.names if ":" not in n))
        print(
            f"warning: pool {spec.pool}: image: multipassd does not offer {spec.image!r}; "
            f"a launch would be refused. It offers: {offered} (and others on remotes: "
            "see `multipass find`)",
            file=sys.stderr,
        )


def _items_from_file(path: Path) -> tuple[str, dict[str, str]]:
    """Items from a YAML/JSON mapping, or from `nomad var get -out json` output."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML or JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of items (min: 1, max: 3, ...)")
    pool = path.stem.split(".")[0]
    if "Items" in doc and isinstance(doc["Items"], dict):
        pool = str(doc.get("Path", pool)).rsplit("/", 1)[-1]
        doc = doc["Items"]
    # Nomad stores every item as a string; accept YAML scalars the same way.
    items = {
        str(k): v
        if isinstance(v, str)
        else json.dumps(v)
        if isinstance(v, (dict, list))
        else str(v).lower()
        if isinstance(v, bool)
        else str(v)
        for k, v in doc.items()
    }
    return pool, items


async def secrets_command(args: argparse.Namespace) -> int:
    if bool(args.cert) != bool(args.key):
        raise ConfigError("secrets import: give both --cert and --key, or neither")
    if args.cert:
        cert_path, key_path = Path(args.cert), Path(args.key)
    else:
        cert_path, key_path = client_certs.find_client_certificate()
    cert_pem, key_pem = client_certs.load_pair(cert_path, key_path)
    passphrase = client_certs.read_passphrase() if args.passphrase_stdin else None
    server_cert = (
        client_certs.load_certificate(Path(args.server_cert)) if args.server_cert else None
    )
    print(
        client_certs.variable_json(
            cert_pem,
            key_pem,
            passphrase=passphrase,
            server_cert_pem=server_cert,
            address=args.multipass_address,
        )
    )
    prefix = getattr(args, "prefix", None) or DEFAULT_PREFIX
    print(
        f"# from {cert_path}; store it with: reconciler secrets import ... | "
        f"nomad var put -in json {prefix} -",
        file=sys.stderr,
    )
    return EXIT_OK
