"""What each CLI command does, given parsed arguments. Output goes to stdout/stderr here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler import client_certs, cluster, ownership
from reconciler.clock import Clock, SystemClock
from reconciler.controller import Controller, PassReport, PoolPlan
from reconciler.diff import invalid_to_json, plan_to_json, plural, render_text, use_colour
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.execute import ActionResult, Executor, ExecutorLimits
from reconciler.fleet import Fleet
from reconciler.hosts_view import build_hosts, hosts_to_json, render_hosts_text
from reconciler.leadership import LeaderElector
from reconciler.logs import redact, redact_pem, scrub
from reconciler.model import ImageCatalogue
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import NotFound
from reconciler.observe import Observer
from reconciler.ownership import DEFAULT_HOST
from reconciler.plan import ActionKind
from reconciler.pools import (
    DEFAULT_PREFIX,
    PoolSource,
    leader_path,
    pool_path,
    pools_prefix,
    status_path,
)
from reconciler.render import render_cloud_init
from reconciler.settings import Settings, settings_from_args
from reconciler.spec import PoolSpec, SpecError, needs_servers, parse_pool_spec
from reconciler.status import (
    StatusWriter,
    load_conditions,
    read_status_table,
    status_to_json,
)
from reconciler.telemetry import HealthServer, Metrics
from reconciler.units import yaml_problem
from reconciler.varfile import VarFileError, read_var_file

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
# The part of a pass's read_timeout one host's reads may take.
HOST_READ_SHARE = 0.8


@dataclass
class Connected:
    settings: Settings
    nomad: NomadClient
    fleet: Fleet
    pools: PoolSource
    controller: Controller

    @property
    def multipass(self) -> Fleet:
        """The fleet, for callers that build their own Observer or Executor from it."""
        return self.fleet


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
    limits = limits or ExecutorLimits()
    async with (
        NomadClient(settings.nomad) as nomad,
        Fleet(nomad, settings, implicit_launch_limit=limits.launch_concurrency) as fleet,
    ):
        # The hosts (or the one daemon of today's settings): a settings problem is raised
        # here, as before hosts were named. Clients connect at their first read.
        await fleet.refresh()
        if metrics is not None:
            m = metrics
            nomad.on_call = lambda route, secs, err: m.api_call("nomad", route, secs, err)
            fleet.on_call = lambda rpc, secs, err: m.api_call("multipass", rpc, secs, err)
        pools = PoolSource(nomad, settings.prefix)
        executor = Executor(fleet, nomad, render_cloud_init, limits)
        observer = Observer(nomad, fleet, clock)
        controller = Controller(
            pools,
            observer,
            executor,
            clock,
            resync=settings.resync,
            status=StatusWriter(nomad),
            write_status=write_status,
            metrics=metrics,
        )
        # One host that does not answer is unreachable this pass, not the pass's failure.
        observer.host_timeout = controller.read_timeout * HOST_READ_SHARE
        yield Connected(settings, nomad, fleet, pools, controller)


def print_plans(
    plans: list[PoolPlan],
    output: str,
    stream: Any = None,
    *,
    where: str = "",
    failing: Mapping[str, str] | None = None,
) -> None:
    """Each pool's plan. ``where``: where pools were looked for (said when none is found);
    ``failing``: per pool, the failure its status records (shown when nothing is planned)."""
    stream = stream or sys.stdout
    failing = failing or {}
    if output == "json":
        docs = [
            invalid_to_json(pp.pool, pp.variable.path, pp.variable.index, _problems(pp))
            if pp.plan is None or pp.spec is None
            else plan_to_json(pp.plan, pp.spec, pp.variable.path, deleted=pp.variable.deleted)
            for pp in plans
        ]
        json.dump({"pools": docs}, stream, indent=2, sort_keys=False)
        stream.write("\n")
        return
    colour = use_colour(stream)
    if not plans:
        stream.write(f"No pools found{' ' + where if where else ''}.\n")
    for pp in plans:
        if pp.plan is None or pp.spec is None:
            stream.write(f"Pool {pp.pool}  ({pp.variable.path} @ index {pp.variable.index})\n")
            what = "planning failed" if pp.error is not None else "invalid spec"
            stream.write(f"  {what}, no action planned:\n")
            for problem in _problems(pp):
                stream.write(f"    - {problem}\n")
            stream.write("\n")
            continue
        stream.write(
            render_text(
                pp.plan,
                pp.spec,
                pp.variable.path,
                colour=colour,
                deleted=pp.variable.deleted,
                failing=failing.get(pp.pool),
            )
        )
        stream.write("\n")


def looked_in(settings: Settings) -> str:
    """Where `plan` looked for pools: a wrong namespace or prefix reads as "none here"."""
    namespace = settings.nomad.namespace or "default"
    return (
        f"in namespace {namespace} under {pools_prefix(settings.prefix)} "
        "(NOMAD_NAMESPACE or --namespace, --prefix)"
    )


async def failures_recorded(nomad: NomadClient, prefix: str, pools: list[str]) -> dict[str, str]:
    """Per pool, the Degraded reason and message its status records, if it is Degraded.

    Best effort: `plan` is read-only and a token may not read status; then nothing is shown.
    """
    reader = StatusWriter(nomad)

    async def one(pool: str) -> tuple[str, str | None]:
        try:
            items = await reader.read(status_path(prefix, pool))
        except ReconcilerError:
            return pool, None
        for c in load_conditions(items.get("conditions", "")):
            if c.get("type") == "Degraded" and c.get("status") is True and c.get("message"):
                return pool, f"{c.get('reason')}: {c['message']}"
        return pool, None

    found = await asyncio.gather(*(one(p) for p in pools))
    return {pool: why for pool, why in found if why}


def _problems(pp: PoolPlan) -> list[str]:
    """Why a pool has no plan: its spec's problems, or the error its planning raised."""
    if pp.error is not None:
        return [scrub(f"planning failed: {pp.error}")]
    return list(pp.problems)


async def plan_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    async with connect(settings, write_status=False) as c:
        c.controller.observer.check_images = True  # warn of an image the daemon lacks
        plans, _ = await c.controller.plan_all(args.pool)
        # As apply and run do: launches that cannot join the cluster (no servers listed,
        # half the TLS items) are held, and plan says so rather than "1 to launch".
        plans = await c.controller.with_discovered_servers(plans)
        # What the last pass's status recorded as failing: said beside the plan, so a
        # launch that keeps failing is not shown as if it were simply to be done.
        planned = [pp.pool for pp in plans if pp.plan is not None]
        failing = await failures_recorded(c.nomad, settings.prefix, planned)
    print_plans(plans, args.output, where=looked_in(settings), failing=failing)
    if any(pp.problems or pp.error for pp in plans):
        return EXIT_ERROR
    return EXIT_CHANGES if any(pp.plan and pp.plan.has_changes for pp in plans) else EXIT_OK


async def apply_command(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise ConfigError(f"--timeout: {args.timeout:g} must be a positive number of seconds")
    settings = settings_from_args(args)
    out = ApplyOutput(sys.stdout)
    async with connect(settings) as c:
        if not args.force:
            await _refuse_beside_a_leader(c.nomad, leader_path(settings.prefix))
        c.controller.on_plans = out.plans
        c.controller.on_action = out.action
        if args.wait:
            report = await c.controller.reconcile_until_converged(args.pool, timeout=args.timeout)
        else:
            report = await c.controller.reconcile_once(args.pool)
    return out.finish(report, wait=args.wait, where=looked_in(settings))


_DONE_WORD = {
    ActionKind.LAUNCH: "launched",
    ActionKind.DRAIN: "drained",
    ActionKind.DELETE: "deleted",
    ActionKind.PURGE_NODE: "nodes purged",
}


class ApplyOutput:
    """What `apply` prints as it goes: the plan it starts from, one line per action as it
    finishes, a line whenever the pools' progress changes (a pipe sees it as a terminal
    does), and a closing summary in Terraform's manner."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.done: dict[ActionKind, int] = dict.fromkeys(_DONE_WORD, 0)
        self.failed = 0
        self._planned = False
        self._last_progress = ""

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def plans(self, plans: list[PoolPlan]) -> None:
        """Called as each pass has planned, before its actions start (and print)."""
        if self._planned:
            self._progress(plans)  # later passes show as progress and action lines
            return
        self._planned = True
        print_plans(plans, "text", self.stream)
        self.stream.flush()

    def action(self, r: ActionResult) -> None:
        a = r.action
        what = f"{a.kind.value} {a.instance}"
        if a.host != DEFAULT_HOST:
            what += f" on {a.host}"
        if r.in_progress:
            self._line(f"{what}: still under way in the daemon ({r.duration:.1f}s)")
        elif r.ok:
            self.done[a.kind] += 1
            self._line(f"{what}: ok ({r.duration:.1f}s)")
        else:
            self.failed += 1
            # An exception's text can quote a request: never let a secret reach the terminal.
            error = scrub(r.error or "unknown error")
            # The executor's errors name their action already: say it once.
            error = error.removeprefix(f"{a.kind.value} {a.instance}: ")
            self._line(f"{what}: FAILED after {r.duration:.1f}s: {error}")

    def _progress(self, plans: list[PoolPlan]) -> None:
        """A line when what the pools wait on changed since the last pass.

        Printed before the pass's own action lines: counted after them, a pass that
        deletes drained members would end in "waiting on 2 drains". Drained members
        are not waited on (their delete is this pass's action); drains under way are.
        """
        parts = []
        for pp in plans:
            if pp.plan is None:
                continue
            c = pp.plan.counts
            busy = [
                plural(n, what, many)
                for n, what, many in (
                    (c["pending"], "launch", "launches"),
                    (c["draining"], "drain", None),
                    (c["deleting"], "delete", None),
                )
                if n
            ]
            waiting = f", waiting on {' and '.join(busy)}" if busy else ""
            parts.append(f"{pp.pool}: {c['ready']}/{pp.plan.desired} ready{waiting}")
        line = "; ".join(parts)
        if line and line != self._last_progress and not PassReport(plans=plans).converged:
            self._line(f"... {line}")
        self._last_progress = line

    def summary(self) -> str:
        return ", ".join(f"{self.done[k]} {word}" for k, word in _DONE_WORD.items()) + "."

    def finish(self, report: PassReport, *, wait: bool, where: str = "") -> int:
        """The closing lines and `apply`'s exit code."""
        if not self._planned and report.plans:
            print_plans(report.plans, "text", self.stream)
        elif not report.plans and not report.error:
            self._line(f"No pools found{' ' + where if where else ''}.")
        if report.error:
            print(f"error: {scrub(report.error)}", file=sys.stderr)
            self._line(f"Apply failed: {self.summary()}")
            return EXIT_ERROR
        if wait and not report.converged:
            failed = f" {plural(self.failed, 'action')} failed." if self.failed else ""
            self._line(f"Apply incomplete: {self.summary()}{failed}")
            print("error: not converged before --timeout", file=sys.stderr)
            return EXIT_ERROR
        invalid = any(pp.problems or pp.error for pp in report.plans)
        if self.failed or invalid:
            failed = f" {plural(self.failed, 'action')} failed." if self.failed else ""
            self._line(f"Apply failed: {self.summary()}{failed}")
            return EXIT_ERROR
        self._line(f"Apply complete: {self.summary()}")
        return EXIT_OK


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
        # A loop with nothing to do logs no action: this line says it runs, and where.
        log.info(
            "run: reconciling the pools in namespace %s under %s; full resync every %gs; %s%s",
            settings.nomad.namespace or "default",
            pools_prefix(settings.prefix),
            settings.resync,
            "leader election off" if args.no_leader_election else "leader election on",
            f"; /metrics on {args.metrics_addr}" if listen is not None else "",
        )
        if args.no_leader_election:
            metrics.set_leader(True)
            await c.controller.run(stop)
            log.info("run: stopped")
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
    log.info("run: stopped")
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
        shown = {pool: status_to_json(items) for pool, items in statuses.items()}
        json.dump({"pools": shown}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    elif not statuses:
        # As plan says where it looked: a wrong namespace or prefix reads as "none here".
        namespace = settings.nomad.namespace or "default"
        print(
            f"No pool status in namespace {namespace} under {prefix} "
            "(NOMAD_NAMESPACE or --namespace, --prefix): no pool reconciled here, "
            "or every one deleted."
        )
    else:
        sys.stdout.write(read_status_table(statuses))
    return EXIT_OK


async def hosts_command(args: argparse.Namespace) -> int:
    """One pass of reading, then each host's reachability, capacity and members."""
    settings = settings_from_args(args)
    async with connect(settings, write_status=False) as c:
        plans, observed = await c.controller.plan_all()
    view = build_hosts(plans, observed.hosts)
    if args.output == "json":
        json.dump(hosts_to_json(view), sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(scrub(render_hosts_text(view)))
    return EXIT_OK


async def render_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    async with NomadClient(settings.nomad) as nomad:
        [variable] = await PoolSource(nomad, settings.prefix).load(args.pool)
        spec = parse_pool_spec(variable.pool, variable.items, variable.index)
        if cluster.uses_shipped_template(spec):
            # As a launch renders it: the servers Nomad lists, the TLS material (not hashed).
            join = await cluster.read_join(nomad, settings.prefix, servers=needs_servers(spec))
            problem = cluster.join_problem(spec, join)
            if problem is not None:
                raise ConfigError(f"pool {spec.pool}: cannot render a launch: {problem}")
            if join.tls is not None:
                redact_pem(join.tls["key"].encode())  # the key is shown as [redacted]
            spec = cluster.for_launch(spec, join)
    name = args.instance or ownership.instance_name(spec.pool, spec.template_hash, 0)
    parsed = ownership.parse_instance_name(name)
    if parsed is None or parsed[0] != spec.pool:
        # The name becomes the VM's hostname and Nomad node name, and the planner knows
        # members by its shape: a name of another shape could never be one of the pool's.
        raise ConfigError(
            f"--instance: {name!r} is not an instance name of pool {spec.pool}: "
            f"<pool>-<5-character hash>-<ordinal>, such as "
            f"{ownership.instance_name(spec.pool, spec.template_hash, 0)}"
        )
    sys.stdout.write(scrub(render_cloud_init(spec, name)))
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
    catalogues: list[ImageCatalogue] = []
    try:
        async with Fleet(nomad, settings) as fleet:
            await fleet.refresh()
            for host in fleet.names():
                try:
                    catalogues.append(await (await fleet.connect(host)).find())
                except ReconcilerError as exc:
                    if len(fleet.names()) == 1:
                        raise
                    print(
                        f"warning: host {host}: could not ask its multipassd: {exc}",
                        file=sys.stderr,
                    )
    except ReconcilerError as exc:
        print(f"warning: could not ask multipassd which images it offers: {exc}", file=sys.stderr)
        return
    if not catalogues:
        return
    # Any host that offers the image can launch it.
    catalogue = ImageCatalogue(frozenset().union(*(c.names for c in catalogues)))
    if not catalogue.offers(spec.image):
        offered = ", ".join(sorted(n for n in catalogue.names if ":" not in n))
        print(
            f"warning: pool {spec.pool}: image: multipassd does not offer {spec.image!r}; "
            f"a launch would be refused. It offers: {offered} (and others on remotes: "
            "see `multipass find`)",
            file=sys.stderr,
        )


def _items_from_file(path: Path) -> tuple[str, dict[str, str]]:
    """Items from a YAML/JSON mapping, `nomad var get -out json` output, or an HCL
    variable file as `nomad var put -in hcl` reads it (manifests/pools/*.nv.hcl)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix == ".hcl":
        try:
            var_path, hcl_items = read_var_file(text)
        except VarFileError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        pool = var_path.rsplit("/", 1)[-1] if var_path else path.stem.split(".")[0]
        return pool, hcl_items
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML, JSON or HCL: {yaml_problem(exc)}") from None
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


async def pool_command(args: argparse.Namespace) -> int:
    """`pool put/get/delete`: pool variables written as `nomad var put` writes them, for a
    machine with no nomad binary; `put` validates first and writes nothing invalid."""
    settings = settings_from_args(args)
    path = pool_path(settings.prefix, args.name)
    if args.pool_command == "put":
        items = _put_items(args)
        try:
            spec = parse_pool_spec(args.name, items)
        except SpecError as exc:
            print(f"pool {args.name}: invalid spec, nothing written:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
            return EXIT_ERROR
    async with NomadClient(settings.nomad) as nomad:
        if args.pool_command == "put":
            written = await nomad.put_var(path, items)
            print(
                f"pool {args.name}: written to {path} @ index {written.modify_index} "
                f"(template hash {spec.template_hash}); `reconciler plan --pool {args.name}`"
            )
            return EXIT_OK
        if args.pool_command == "get":
            try:
                var = await nomad.get_var(path)
            except NotFound:
                raise ConfigError(f"pool {args.name!r}: no variable at {path}") from None
            doc: dict[str, Any] = {
                "Namespace": var.namespace,
                "Path": var.path,
                "Items": dict(var.items),
                "ModifyIndex": var.modify_index,
            }
            print(json.dumps(doc, indent=2, sort_keys=True))
            return EXIT_OK
        try:
            await nomad.get_var(path)
        except NotFound:
            raise ConfigError(f"pool {args.name!r}: no variable at {path}") from None
        await nomad.delete_var(path)
    print(
        f"pool {args.name}: spec deleted; the reconciler drains and deletes its members, "
        "then removes its status (`reconciler plan` shows them). To keep the VMs, pause "
        "the pool or protect them first (docs/operations.md)"
    )
    return EXIT_OK


def _put_items(args: argparse.Namespace) -> dict[str, str]:
    if args.file and args.items:
        raise ConfigError("pool put: give KEY=VALUE items or --file, not both")
    if args.file:
        return _items_from_file(Path(args.file))[1]
    items: dict[str, str] = {}
    for text in args.items:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"pool put: {text!r} is not KEY=VALUE (as `nomad var put` takes)")
        items[key] = value
    if not items:
        raise ConfigError("pool put: no items; e.g. `reconciler pool put web min=2 max=4`")
    return items


async def secrets_command(args: argparse.Namespace) -> int:
    if bool(args.cert) != bool(args.key):
        raise ConfigError("secrets import: give both --cert and --key, or neither")
    if args.cert:
        cert_path, key_path = Path(args.cert), Path(args.key)
    else:
        cert_path, key_path = client_certs.find_client_certificate()
    cert_pem, key_pem = client_certs.load_pair(cert_path, key_path)
    passphrase = client_certs.read_passphrase() if args.passphrase_stdin else None
    if args.server_cert:
        pin_path: Path | None = Path(args.server_cert)
    else:
        pin_path, note = client_certs.find_root_cert()
        print(f"# {note}", file=sys.stderr)
    server_cert = client_certs.load_certificate(pin_path) if pin_path else None
    if pin_path and server_cert:
        warning = client_certs.pin_warning(pin_path, server_cert)
        if warning:
            print(f"# warning: {warning}", file=sys.stderr)
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
