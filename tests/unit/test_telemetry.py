"""Metrics values after the calls the loop makes, and no secret in any label."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from reconciler.clock import ManualClock
from reconciler.telemetry import Metrics


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_each_series_reflects_what_was_reported() -> None:
    m = Metrics(ManualClock())
    m.observe_pool("web", {"ready": 2, "pending": 1, "unhealthy": 1}, desired=3)
    m.observe_pool("bad", None, None)
    m.action_done("web", "launch", True, 12.0)
    m.action_done("web", "launch", False, 1.0)
    m.api_call("nomad", "GET /v1/nodes", 0.02, None)
    m.api_call("multipass", "launch", 0.5, "Unavailable")
    m.pass_done(0.3)
    m.set_leader(True)
    got = samples(m)
    p = "multipass_reconciler_"
    assert got[(p + "desired_members", (("pool", "web"),))] == 3
    assert got[(p + "members", (("pool", "web"), ("state", "ready")))] == 2
    assert got[(p + "members", (("pool", "web"), ("state", "unhealthy")))] == 1
    assert got[(p + "spec_valid", (("pool", "web"),))] == 1
    assert got[(p + "spec_valid", (("pool", "bad"),))] == 0
    key = (("kind", "launch"), ("outcome", "error"), ("pool", "web"))
    assert got[(p + "actions_total", key)] == 1
    assert (
        got[(p + "api_call_seconds_count", (("api", "nomad"), ("endpoint", "GET /v1/nodes")))] == 1
    )
    err = (("api", "multipass"), ("endpoint", "launch"), ("error", "Unavailable"))
    assert got[(p + "api_errors_total", err)] == 1
    assert got[(p + "reconcile_pass_seconds_count", ())] == 1
    assert got[(p + "leader", ())] == 1


def test_registries_are_separate() -> None:
    a, b = Metrics(ManualClock()), Metrics(ManualClock())
    a.set_leader(True)
    assert samples(b)[("multipass_reconciler_leader", ())] == 0
