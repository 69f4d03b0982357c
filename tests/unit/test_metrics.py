"""The metrics registry (reconciler.telemetry.Metrics): values after each report, and no secrets.

The secret check goes through the real Nomad client: its ``on_call`` hook is
what feeds ``api_call`` in ``reconciler run``, so a token, passphrase or key
that reached a label would arrive that way (a route naming the secrets
variable, an error text echoing the token). The transport is an
``httpx.MockTransport``: no network, every answer chosen here.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.clock import ManualClock
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import NomadUnavailable, PermissionDenied
from reconciler.nomad.settings import NomadSettings
from reconciler.telemetry import MEMBER_STATES, Metrics

P = "multipass_reconciler_"
TOKEN = "3f1c2b7e-token-planted-0000-9d8e7f6a5b4c"
PASSPHRASE = "passphrase-planted-correct-horse"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIplantedKEYmaterial\n-----END PRIVATE KEY-----"
SECRETS = (TOKEN, PASSPHRASE, "MIIplantedKEYmaterial", "planted")

Labels = tuple[tuple[str, str], ...]


def samples(m: Metrics) -> dict[tuple[str, Labels], float]:
    """Every sample of the text exposition, keyed by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_pool_gauges_follow_the_latest_plan() -> None:
    m = Metrics(ManualClock())
    m.observe_pool("web", {"ready": 2, "pending": 1}, desired=3)
    m.observe_pool("web", {"ready": 3, "outdated": 1, "protected": 1}, desired=4)
    got = samples(m)
    assert got[(P + "desired_members", (("pool", "web"),))] == 4
    expected = {"ready": 3, "pending": 0, "outdated": 1, "protected": 1, "draining": 0}
    for state, value in expected.items():
        assert got[(P + "members", (("pool", "web"), ("state", state)))] == value
    # Every state is exported for a pool, zero included, so a dashboard never sees gaps.
    states = {dict(k[1])["state"] for k in got if k[0] == P + "members"}
    assert states == set(MEMBER_STATES)
    assert got[(P + "spec_valid", (("pool", "web"),))] == 1


def test_an_invalid_spec_flips_spec_valid_only_for_its_pool() -> None:
    m = Metrics(ManualClock())
    m.observe_pool("web", {"ready": 1}, desired=1)
    m.observe_pool("db", {"ready": 2}, desired=2)
    m.observe_pool("web", None, None)
    got = samples(m)
    assert got[(P + "spec_valid", (("pool", "web"),))] == 0
    assert got[(P + "spec_valid", (("pool", "db"),))] == 1
    assert got[(P + "desired_members", (("pool", "db"),))] == 2


def test_actions_count_by_outcome_and_time_by_kind() -> None:
    m = Metrics(ManualClock())
    m.action_done("web", "launch", True, 30.0)
    m.action_done("web", "launch", True, 50.0)
    m.action_done("web", "drain", False, 2.0)
    got = samples(m)
    ok = (("kind", "launch"), ("outcome", "ok"), ("pool", "web"))
    failed = (("kind", "drain"), ("outcome", "error"), ("pool", "web"))
    assert got[(P + "actions_total", ok)] == 2
    assert got[(P + "actions_total", failed)] == 1
    assert got[(P + "action_seconds_count", (("kind", "launch"),))] == 2
    assert got[(P + "action_seconds_sum", (("kind", "launch"),))] == 80.0
    # Buckets are cumulative upper bounds: 30 s lands in le=30, both in le=60.
    assert got[(P + "action_seconds_bucket", (("kind", "launch"), ("le", "30.0")))] == 1
    assert got[(P + "action_seconds_bucket", (("kind", "launch"), ("le", "60.0")))] == 2


def test_passes_api_calls_errors_and_leadership() -> None:
    m = Metrics(ManualClock())
    m.pass_done(0.25)
    m.pass_done(0.75)
    m.api_call("nomad", "GET /v1/nodes", 0.01, None)
    m.api_call("nomad", "GET /v1/nodes", 0.03, "NomadUnavailable")
    m.api_call("multipass", "launch", 1.5, None)
    m.set_leader(True)
    got = samples(m)
    assert got[(P + "reconcile_pass_seconds_count", ())] == 2
    assert got[(P + "reconcile_pass_seconds_sum", ())] == 1.0
    nodes = (("api", "nomad"), ("endpoint", "GET /v1/nodes"))
    assert got[(P + "api_call_seconds_count", nodes)] == 2
    assert got[(P + "api_call_seconds_sum", nodes)] == pytest.approx(0.04)
    assert got[(P + "api_errors_total", (*nodes, ("error", "NomadUnavailable")))] == 1
    launch = (("api", "multipass"), ("endpoint", "launch"))
    assert got[(P + "api_call_seconds_count", launch)] == 1
    # Calls that succeeded count no error series at all.
    assert not any(k[0] == P + "api_errors_total" and dict(k[1])["api"] == "multipass" for k in got)
    assert got[(P + "leader", ())] == 1
    m.set_leader(False)
    assert samples(m)[(P + "leader", ())] == 0


def test_every_name_carries_the_prefix() -> None:
    m = Metrics(ManualClock())
    families = list(text_string_to_metric_families(m.exposition().decode()))
    assert families
    assert all(f.name.startswith(P) for f in families)


# ---------------------------------------------------------------- secrets


def _nomad_answers(request: httpx.Request) -> httpx.Response:
    """A Nomad that hands out the secrets variable, echoes the token in errors, denies some."""
    path = request.url.path
    if path.endswith("/multipass-reconciler"):
        items = {"client_key": KEY, "passphrase": PASSPHRASE, "client_cert": "cert"}
        body = {
            "Namespace": "default",
            "Path": "nomad/jobs/multipass-reconciler",
            "Items": items,
            "CreateIndex": 5,
            "ModifyIndex": 5,
        }
        return httpx.Response(200, json=body, headers={"X-Nomad-Index": "5"})
    if path.startswith("/v1/node/"):
        token = request.headers.get("X-Nomad-Token", "")
        return httpx.Response(500, text=f"rpc error: token {token} rejected by {PASSPHRASE}")
    return httpx.Response(403, text=f"Permission denied for token {TOKEN}")


async def test_no_secret_reaches_any_label_through_the_clients_hook() -> None:
    m = Metrics(ManualClock())
    settings = NomadSettings(address="http://nomad.invalid:4646", token=TOKEN, attempts=1)
    transport = httpx.MockTransport(_nomad_answers)
    async with NomadClient(settings, transport=transport) as nomad:
        nomad.on_call = lambda route, secs, err: m.api_call("nomad", route, secs, err)
        secrets = await nomad.get_var("nomad/jobs/multipass-reconciler")
        assert secrets.items["passphrase"] == PASSPHRASE  # the secrets really passed through
        with pytest.raises(NomadUnavailable):
            await nomad.get_node("node-1")
        with pytest.raises(PermissionDenied):
            await nomad.list_nodes()
    m.observe_pool("web", {"ready": 1}, desired=1)
    m.action_done("web", "launch", False, 1.0)
    m.pass_done(0.1)
    m.set_leader(True)

    text = m.exposition().decode()
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into the exposition"
    got = samples(m)
    # The variable path is folded into the route: the label names no variable at all.
    var_route = (("api", "nomad"), ("endpoint", "GET /v1/var/:path"))
    assert got[(P + "api_call_seconds_count", var_route)] == 1
    node_err = (("api", "nomad"), ("endpoint", "GET /v1/node/:id"), ("error", "NomadUnavailable"))
    assert got[(P + "api_errors_total", node_err)] == 1
    denied = (("api", "nomad"), ("endpoint", "GET /v1/nodes"), ("error", "http_403"))
    assert got[(P + "api_errors_total", denied)] == 1
