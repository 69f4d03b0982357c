"""Prometheus metrics and the health endpoints of `reconciler run`.

``Metrics`` holds every series on its own registry (tests make fresh ones; the
process-global default registry stays out of it). The controller reports to it
after each pass and action, the clients after each call. ``HealthServer``
serves it with aiohttp:

* ``/metrics``: the Prometheus text exposition;
* ``/healthz``: 200 while the loop is alive (a pass started within
  ``wedged_after``), 503 when it is wedged: Nomad's check restarts the task;
* ``/readyz``: 200 once both inventories (Nomad and multipassd) were read
  successfully within ``fresh_for``, else 503 saying which is stale.

Labels are pool names, action kinds, outcomes, routes and error class names:
never a token, passphrase or key, whatever a caller passes in messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from reconciler.clock import Clock
from reconciler.hosts_view import HostsView, resources_json

if TYPE_CHECKING:
    from aiohttp import web

PREFIX = "multipass_reconciler"
MEMBER_STATES = ("ready", "pending", "draining", "drained", "unhealthy", "outdated", "protected")


class Metrics:
    def __init__(self, clock: Clock, registry: CollectorRegistry | None = None) -> None:
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.desired = Gauge(f"{PREFIX}_desired_members", "Desired pool size", ["pool"], registry=r)
        self.members = Gauge(
            f"{PREFIX}_members", "Pool members by state", ["pool", "state"], registry=r
        )
        self.spec_valid = Gauge(
            f"{PREFIX}_spec_valid", "1 when the pool's spec parses", ["pool"], registry=r
        )
        self.actions = Counter(
            f"{PREFIX}_actions",
            "Actions by kind and outcome",
            ["pool", "kind", "outcome"],
            registry=r,
        )
        self.action_seconds = Histogram(
            f"{PREFIX}_action_seconds",
            "Action duration",
            ["kind"],
            registry=r,
            buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900),
        )
        self.pass_seconds = Histogram(
            f"{PREFIX}_reconcile_pass_seconds", "Duration of one reconcile pass", registry=r
        )
        self.api_seconds = Histogram(
            f"{PREFIX}_api_call_seconds", "API call latency", ["api", "endpoint"], registry=r
        )
        self.api_errors = Counter(
            f"{PREFIX}_api_errors", "API call errors", ["api", "endpoint", "error"], registry=r
        )
        self.leader = Gauge(f"{PREFIX}_leader", "1 while this replica leads", registry=r)
        self.host_reachable = Gauge(
            f"{PREFIX}_host_reachable",
            "1 when the host's multipassd was read this pass",
            ["host"],
            registry=r,
        )
        self.host_members = Gauge(
            f"{PREFIX}_host_members", "Pool members on the host", ["host", "pool"], registry=r
        )
        self.host_resources = Gauge(
            f"{PREFIX}_host_resources",
            "The host's CPUs (vCPUs placeable), memory and disk (bytes): "
            "capacity, used by members and free",
            ["host", "resource", "kind"],
            registry=r,
        )
        # The label sets set by the last observe_hosts, to drop the ones that went away.
        self._host_series: dict[Gauge, set[tuple[str, ...]]] = {}
        self.last_pass_started = 0.0
        self.last_observed = {"nomad": 0.0, "multipass": 0.0}

    # ------------------------------------------------------------ what the loop reports

    def pass_started(self) -> None:
        self.last_pass_started = self.clock.now()

    def pass_done(self, seconds: float) -> None:
        self.pass_seconds.observe(seconds)

    def observed(self) -> None:
        """Both inventories were read (an observation never succeeds half way)."""
        now = self.clock.now()
        self.last_observed = {"nomad": now, "multipass": now}

    def observe_pool(
        self, pool: str, counts: Mapping[str, int] | None, desired: int | None
    ) -> None:
        """One pool's plan: counts and desired, or (None) an invalid spec."""
        self.spec_valid.labels(pool).set(1 if counts is not None else 0)
        if counts is None or desired is None:
            return
        self.desired.labels(pool).set(desired)
        for state in MEMBER_STATES:
            self.members.labels(pool, state).set(counts.get(state, 0))

    def observe_hosts(self, view: HostsView) -> None:
        """Per-host gauges from one pass (reconciler.hosts_view, what `reconciler hosts` shows).

        A host or a pool that left since the last pass loses its series: a gauge that
        keeps its last value would show members or room that are gone. A capacity that
        is not known (an unreachable daemon) or not accounted (no host variable) has no
        capacity or free series, only used.
        """
        current: dict[Gauge, dict[tuple[str, ...], float]] = {
            self.host_reachable: {},
            self.host_members: {},
            self.host_resources: {},
        }
        for row in view.hosts:
            current[self.host_reachable][(row.name,)] = 1 if row.reachable else 0
            for p in row.pools:
                current[self.host_members][(row.name, p.pool)] = p.members
            figures = {"used": row.used, "capacity": row.capacity, "free": row.free}
            for kind, amounts in figures.items():
                if amounts is None:
                    continue
                for resource, amount in resources_json(amounts).items():
                    current[self.host_resources][(row.name, resource, kind)] = amount
        for gauge, values in current.items():
            for labels in self._host_series.get(gauge, set()) - values.keys():
                gauge.remove(*labels)
            for labels, value in values.items():
                gauge.labels(*labels).set(value)
            self._host_series[gauge] = set(values)

    def action_done(self, pool: str, kind: str, ok: bool, seconds: float) -> None:
        self.actions.labels(pool, kind, "ok" if ok else "error").inc()
        self.action_seconds.labels(kind).observe(seconds)

    def api_call(self, api: str, endpoint: str, seconds: float, error: str | None) -> None:
        self.api_seconds.labels(api, endpoint).observe(seconds)
        if error is not None:
            self.api_errors.labels(api, endpoint, error).inc()

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """``async with HealthServer(metrics, "0.0.0.0", 9100) as s:`` serves until the block ends."""

    def __init__(
        self,
        metrics: Metrics,
        host: str,
        port: int,
        *,
        wedged_after: float = 300.0,
        fresh_for: float = 120.0,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.wedged_after = wedged_after
        self.fresh_for = fresh_for
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> HealthServer:
        # Imported here: aiohttp's server is ~11 MB of a controller that serves no metrics.
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.Response(
            body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        from aiohttp import web

        since = self.metrics.clock.now() - self.metrics.last_pass_started
        if self.metrics.last_pass_started and since > self.wedged_after:
            return web.Response(status=503, text=f"no reconcile pass for {since:.0f}s\n")
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        from aiohttp import web

        now = self.metrics.clock.now()
        stale = [
            f"{api} not read for {now - at:.0f}s" if at else f"{api} not read yet"
            for api, at in sorted(self.metrics.last_observed.items())
            if not at or now - at > self.fresh_for
        ]
        if stale:
            return web.Response(status=503, text="; ".join(stale) + "\n")
        return web.Response(text="ok\n")
