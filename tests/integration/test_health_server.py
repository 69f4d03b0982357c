"""The health server (reconciler.telemetry.HealthServer) over real HTTP, on a hand-moved clock.

What Nomad's checks and Prometheus see: /metrics parses as the text
exposition, /healthz turns 503 once the loop stops starting passes (Nomad then
restarts the task), /readyz is 200 only while both inventories are fresh.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.clock import ManualClock
from reconciler.telemetry import HealthServer, Metrics

WEDGED_AFTER = 300.0
FRESH_FOR = 120.0


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[Metrics, ManualClock, httpx.AsyncClient]]:
    clock = ManualClock()
    metrics = Metrics(clock)
    health = HealthServer(metrics, "127.0.0.1", 0, wedged_after=WEDGED_AFTER, fresh_for=FRESH_FOR)
    async with health as server:
        assert server.port != 0  # port 0 asks for a free port; the bound one is exposed
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
            yield metrics, clock, http


async def test_metrics_is_the_prometheus_text_exposition() -> None:
    async with serving() as (metrics, _, http):
        metrics.observe_pool("web", {"ready": 2, "pending": 1}, desired=3)
        metrics.action_done("web", "launch", True, 12.0)
        metrics.api_call("nomad", "GET /v1/nodes", 0.02, None)
        metrics.pass_done(0.4)
        metrics.set_leader(True)
        r = await http.get("/metrics")
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        p = "multipass_reconciler_"
        for name in ("members", "desired_members", "spec_valid", "actions", "leader"):
            assert p + name in families, name
        assert families[p + "reconcile_pass_seconds"].type == "histogram"
        assert families[p + "api_call_seconds"].type == "histogram"
        leader = families[p + "leader"].samples
        assert [s.value for s in leader] == [1.0]
        ready = [s for s in families[p + "members"].samples if s.labels["state"] == "ready"]
        assert [(s.labels["pool"], s.value) for s in ready] == [("web", 2.0)]


async def test_healthz_turns_503_when_passes_stop_and_back_when_they_resume() -> None:
    async with serving() as (metrics, clock, http):
        metrics.pass_started()
        assert (await http.get("/healthz")).status_code == 200
        clock.advance(WEDGED_AFTER - 1)
        assert (await http.get("/healthz")).status_code == 200
        clock.advance(2)  # no pass for longer than WEDGED_AFTER: the loop is wedged
        wedged = await http.get("/healthz")
        assert wedged.status_code == 503
        assert "no reconcile pass" in wedged.text and wedged.text.count("\n") == 1
        metrics.pass_started()
        assert (await http.get("/healthz")).status_code == 200


async def test_readyz_needs_both_inventories_read_recently() -> None:
    async with serving() as (metrics, clock, http):
        never = await http.get("/readyz")
        assert never.status_code == 503
        assert "multipass not read yet" in never.text and "nomad not read yet" in never.text
        metrics.observed()
        assert (await http.get("/readyz")).status_code == 200
        clock.advance(FRESH_FOR - 1)
        assert (await http.get("/readyz")).status_code == 200
        clock.advance(2)
        stale = await http.get("/readyz")
        assert stale.status_code == 503
        assert "not read for 121s" in stale.text
        metrics.observed()
        assert (await http.get("/readyz")).status_code == 200


async def test_the_server_stops_with_its_block() -> None:
    clock = ManualClock()
    async with HealthServer(Metrics(clock), "127.0.0.1", 0) as server:
        port = server.port
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/healthz")
