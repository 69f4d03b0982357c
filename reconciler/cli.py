"""The `reconciler` command: argument wiring only; the work lives in reconciler.app & co.

Exit codes (DESIGN.md): plan 0 = no changes, 2 = changes, 1 = error;
spec validate 0 = valid, 1 = invalid; everything else 0 = ok, 1 = error.
A usage error (unknown flag, bad value) is an error too: 1, never plan's 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from reconciler import __version__
from reconciler.errors import ReconcilerError
from reconciler.logs import scrub, setup_logging

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def _connection_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection (flags override the environment)")
    g.add_argument("--address", dest="nomad_addr", help="Nomad API address (NOMAD_ADDR)")
    g.add_argument("--token", dest="nomad_token", help="Nomad ACL token (NOMAD_TOKEN)")
    g.add_argument("--namespace", dest="nomad_namespace", help="Nomad namespace (NOMAD_NAMESPACE)")
    g.add_argument("--region", dest="nomad_region", help="Nomad region (NOMAD_REGION)")
    g.add_argument("--ca-cert", dest="nomad_cacert", help="CA for Nomad's TLS (NOMAD_CACERT)")
    g.add_argument("--client-cert", dest="nomad_client_cert", help="NOMAD_CLIENT_CERT")
    g.add_argument("--client-key", dest="nomad_client_key", help="NOMAD_CLIENT_KEY")
    g.add_argument(
        "--skip-verify",
        dest="nomad_skip_verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="do not verify Nomad's TLS certificate (NOMAD_SKIP_VERIFY)",
    )
    g.add_argument(
        "--tls-server-name",
        dest="nomad_tls_server_name",
        help="name to verify Nomad's certificate against (NOMAD_TLS_SERVER_NAME)",
    )
    g.add_argument(
        "--multipass-address",
        dest="multipass_address",
        help="multipassd address, host:port or unix:/path (MULTIPASS_SERVER_ADDRESS)",
    )
    g.add_argument(
        "--prefix",
        default=None,
        help="variable prefix (default nomad/jobs/multipass-reconciler; RECONCILER_PREFIX)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1 (error), not 2: plan's 2 means "changes"."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at the top: it loads grpc, which must not load before main()
    # has set GRPC_VERBOSITY.
    from reconciler.controller import SHUTDOWN_GRACE
    from reconciler.sim.control import HOST_ACTIONS

    # Subparsers are made with the parent's class, so every subcommand gets _Parser.
    parser = _Parser(
        prog="reconciler",
        description=(
            "Keeps Multipass VMs running as Nomad clients in line with a spec in Nomad Variables."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        help="DEBUG, INFO, WARNING, ERROR (default: INFO for run, one line per action; "
        "WARNING for the other commands)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole loop on the embedded simulators")
    demo.add_argument("--seed", type=int, default=7)

    sim = sub.add_parser("sim", help="run the Nomad and multipassd simulators until stopped")
    sim.add_argument("--nomad-port", type=int, default=0)
    sim.add_argument("--multipass-port", type=int, default=0)
    sim.add_argument("--state-dir", help="where to write the certificates (default: a temp dir)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--boot-seconds", type=float, default=40.0, help="simulated VM boot time")
    sim.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second (e.g. 10)"
    )
    sim.add_argument("--acl", action="store_true", help="enable ACLs; prints a management token")
    sim.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ENDPOINT:OPTS",
        help="inject a fault, e.g. 'launch:error_rate=0.3' or 'GET /v1/nodes:latency=0.5'",
    )
    sim.add_argument(
        "--never-join", type=float, default=0.0, help="fraction of VMs that never join"
    )
    sim.add_argument(
        "--launch-failure",
        type=float,
        default=0.0,
        metavar="RATE",
        help="fraction of launches that fail after preparing (FAILED_PRECONDITION)",
    )
    sim.add_argument(
        "--prepare-seconds",
        type=float,
        default=0.0,
        help="mean simulated image preparation time; the name is 'being prepared' meanwhile",
    )
    sim.add_argument("--host-cpus", type=int, default=16, help="the simulated host's CPUs")
    sim.add_argument("--host-memory", default="64G", help="the simulated host's RAM, e.g. 64G")
    sim.add_argument("--host-disk", default="1T", help="the simulated host's disk, e.g. 1T")
    sim.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="NAME:OPTS",
        help="run a workload, e.g. 'api:count=6,cpu=500,memory=1024' (blocked until nodes fit it)",
    )
    sim.add_argument(
        "--hosts",
        type=int,
        default=1,
        help="simulated Multipass hosts (default 1); more than one are host1..hostN, each its "
        "own daemon and --host-* capacity, with their <prefix>/hosts/<host> variables written",
    )
    sim.add_argument(
        "--prefix",
        default=None,
        help="where --hosts writes its variables (default nomad/jobs/multipass-reconciler; "
        "RECONCILER_PREFIX)",
    )
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    ctl = sim_sub.add_parser("ctl", help="control a running simulator (found through NOMAD_ADDR)")
    ctl_sub = ctl.add_subparsers(dest="ctl_command", required=True, metavar="WHAT")
    ctl_host = ctl_sub.add_parser(
        "host",
        help="break or mend a simulated host: daemon-down (its VMs run on), daemon-up, "
        "power-off (its VMs stop, their nodes go down), power-on (they come back)",
    )
    ctl_host.add_argument("name", help="the host: host1..hostN, or default for a single host")
    ctl_host.add_argument("action", choices=HOST_ACTIONS)
    ctl_host.add_argument("--address", help="the simulated Nomad's address (NOMAD_ADDR)")
    ctl_host.add_argument(
        "--token", help="a management token, if the simulator runs with --acl (NOMAD_TOKEN)"
    )

    for name, help_text in (
        ("plan", "dry-run diff; changes nothing (exit 0 no changes, 2 changes, 1 error)"),
        ("apply", "one reconcile pass (or until converged with --wait)"),
        ("status", "show the status the reconciler wrote"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--pool", help="only this pool (default: every pool)")
        if name in ("plan", "status"):
            p.add_argument("-o", "--output", choices=("text", "json"), default="text")
        if name == "apply":
            p.add_argument("--wait", action="store_true", help="repeat passes until converged")
            p.add_argument("--timeout", type=float, default=1800.0, help="seconds, with --wait")
            p.add_argument(
                "--force", action="store_true", help="act even while a `reconciler run` leads"
            )
        _connection_flags(p)

    hosts = sub.add_parser(
        "hosts",
        help="each Multipass host: reachable, version, capacity used and free, members per pool",
    )
    hosts.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _connection_flags(hosts)

    run = sub.add_parser("run", help="the controller loop (daemon)")
    run.add_argument("--resync", type=float, default=30.0, help="seconds between full resyncs")
    run.add_argument(
        "--launch-concurrency",
        type=int,
        default=3,
        help="launches at once on the single daemon of a setup without host variables "
        "(hosts set their own: max_parallel_launches)",
    )
    run.add_argument(
        "--metrics-addr",
        help="serve /metrics, /healthz and /readyz on host:port (e.g. 0.0.0.0:9100)",
    )
    run.add_argument(
        "--no-leader-election",
        action="store_true",
        help="act without taking the <prefix>/leader lock (a single replica only)",
    )
    run.add_argument(
        "--leader-ttl", type=float, default=15.0, help="lock TTL and lock delay, seconds (>= 10)"
    )
    run.add_argument(
        "--shutdown-grace",
        type=float,
        default=SHUTDOWN_GRACE,
        help="seconds calls in flight get after SIGTERM before they are cancelled and the "
        "leader lock is released; keep it below the job's kill_timeout minus 5 s",
    )
    _connection_flags(run)

    render = sub.add_parser("render", help="print the cloud-init an instance would get")
    render.add_argument("--pool", required=True)
    render.add_argument("--instance", help="instance name (default: the pool's next new one)")
    _connection_flags(render)

    spec = sub.add_parser("spec", help="work with pool specs")
    spec_sub = spec.add_subparsers(dest="spec_command", required=True, metavar="SUBCOMMAND")
    validate = spec_sub.add_parser(
        "validate", help="validate a pool spec (exit 0 valid, 1 invalid)"
    )
    src = validate.add_mutually_exclusive_group(required=True)
    src.add_argument("--pool", help="validate the pool variable stored in Nomad")
    src.add_argument(
        "file", nargs="?", help="a YAML/JSON file of items, or a `nomad var` JSON export"
    )
    _connection_flags(validate)

    pool = sub.add_parser(
        "pool", help="write, read and delete pool specs as `nomad var put/get/purge` would"
    )
    pool_sub = pool.add_subparsers(dest="pool_command", required=True, metavar="SUBCOMMAND")
    put = pool_sub.add_parser("put", help="validate, then write <prefix>/pools/NAME")
    put.add_argument("name")
    put.add_argument("items", nargs="*", metavar="KEY=VALUE", help="items, as nomad var put")
    put.add_argument("--file", help="items from a YAML/JSON/HCL file instead (as spec validate)")
    _connection_flags(put)
    get = pool_sub.add_parser("get", help="print the pool's variable as `nomad var get -out json`")
    get.add_argument("name")
    _connection_flags(get)
    delete = pool_sub.add_parser(
        "delete", help="delete the pool's spec: its members are drained and deleted"
    )
    delete.add_argument("name")
    _connection_flags(delete)

    secrets = sub.add_parser("secrets", help="connection secrets")
    secrets_sub = secrets.add_subparsers(
        dest="secrets_command", required=True, metavar="SUBCOMMAND"
    )
    imp = secrets_sub.add_parser(
        "import", help="print JSON for `nomad var put -in json <prefix> -`"
    )
    imp.add_argument("--cert", help="Multipass client certificate (default: the usual location)")
    imp.add_argument("--key", help="Multipass client key (default: the usual location)")
    imp.add_argument("--passphrase-stdin", action="store_true")
    imp.add_argument("--server-cert", help="the daemon's certificate to pin")
    imp.add_argument("--multipass-address", dest="multipass_address")
    imp.add_argument("--prefix", help="the reconciler's variable (for the hint printed)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # gRPC's C core logs to stderr on its own (`ssl_transport_security.cc ... Handshake
    # failed`); what went wrong reaches the user as our error message instead. Set
    # before grpc is first imported (the commands import it lazily); DEBUG turns it on.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    args = build_parser().parse_args(argv)
    level = args.log_level or ("INFO" if args.command == "run" else "WARNING")
    if level.upper() == "DEBUG" and os.environ["GRPC_VERBOSITY"] == "NONE":
        os.environ["GRPC_VERBOSITY"] = "ERROR"
    try:
        setup_logging(level)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return asyncio.run(_dispatch(args))
    except ReconcilerError as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """stdout's reader went away: say nothing more, and let no flush at exit complain."""
    # Python's documented recipe (library/signal.html, "Note on SIGPIPE"): point stdout
    # at devnull, so the interpreter's final flush cannot raise a second time.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


async def _dispatch(args: argparse.Namespace) -> int:
    # Imports are local so `reconciler --help` stays fast and light.
    if args.command == "demo":
        from reconciler.demo import run_demo

        return await run_demo(seed=args.seed)
    if args.command == "sim" and args.sim_command == "ctl":
        from reconciler.sim.control import ctl_command

        return await ctl_command(args)
    if args.command == "sim":
        from reconciler.sim.runner import run_sim_command

        return await run_sim_command(args)
    from reconciler import app

    handlers = {
        "plan": app.plan_command,
        "apply": app.apply_command,
        "status": app.status_command,
        "hosts": app.hosts_command,
        "run": app.run_command,
        "render": app.render_command,
        "spec": app.spec_command,
        "pool": app.pool_command,
        "secrets": app.secrets_command,
    }
    return await handlers[args.command](args)
