"""manifests/: the job, its ACL policy and the example pools parse and say what matters."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import hcl2
import pytest

from reconciler import client_certs, ownership
from reconciler.app import connect
from reconciler.clock import ManualClock
from reconciler.execute import ExecutorLimits
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import PermissionDenied
from reconciler.nomad.settings import NomadSettings
from reconciler.pools import DEFAULT_PREFIX, leader_path, pool_path, status_path
from reconciler.render import render_cloud_init
from reconciler.settings import Settings
from reconciler.sim.cloudinit import interpret
from reconciler.sim.nomad_state import MANAGEMENT, Policy
from reconciler.sim.world import SimConfig, Simulation
from reconciler.spec import parse_pool_spec
from tests.integration.sim_harness import SERVERS, Harness

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def load(name: str) -> dict[str, Any]:
    with (MANIFESTS / name).open() as f:
        return clean(hcl2.load(f))  # type: ignore[no-any-return]


def clean(value: Any) -> Any:
    """python-hcl2's output without its bookkeeping: `__...__` keys, quotes around labels."""
    if isinstance(value, dict):
        return {k.strip('"'): clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def text(value: Any) -> str:
    """An HCL string as Nomad reads it (python-hcl2 keeps quotes and heredoc markers)."""
    s = str(value)
    if s.startswith('"<<') and s.endswith('"'):
        s = s[1:-1]  # a heredoc, kept quoted by some python-hcl2 versions
    elif s.startswith('"') and s.endswith('"'):
        return str(json.loads(s))  # HCL's escapes are JSON's for what these files use
    if s.startswith("<<"):
        head, _, rest = s.partition("\n")
        body = rest.rsplit("\n", 1)[0]
        return (textwrap.dedent(body) if head.startswith("<<-") else body) + "\n"
    return s


def block(value: Any) -> dict[str, Any]:
    """A block, or the labelled blocks of one kind merged into {label: body}."""
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            merged.update(item)
        return merged
    return value  # type: ignore[no-any-return]


def test_the_job_runs_two_replicas_with_health_checks_and_a_workload_identity() -> None:
    job = block(load("multipass-reconciler.nomad.hcl")["job"])
    assert list(job) == ["multipass-reconciler"]  # its variables are nomad/jobs/<this name>
    body = block(next(iter(job.values())))
    group = block(next(iter(block(body["group"]).values())))
    assert group["count"] == 2
    service = block(group["service"])
    paths = sorted(text(block(c)["path"]) for c in service["check"])
    assert paths == ["/healthz", "/readyz"]
    assert block(group["update"])["max_parallel"] == 1
    task = block(next(iter(block(group["task"]).values())))
    assert block(task["identity"])["env"] is True
    args = [text(a) for a in block(task["config"])["args"]]
    assert "run" in args and "--metrics-addr" in args
    templates = " ".join(text(block(t)["data"]) for t in task["template"])
    assert 'nomadVar "nomad/jobs/multipass-reconciler"' in templates
    for item in ("client_cert", "client_key", "server_cert", "passphrase", "multipass_address"):
        assert f".{item}" in templates
    assert block(task["resources"])["memory"] >= 128


def capabilities(policy: dict[str, Any]) -> dict[str, list[str]]:
    ns = block(next(iter(block(policy["namespace"]).values())))
    paths = block(block(ns["variables"])["path"])
    return {text(p): [text(c) for c in block(v)["capabilities"]] for p, v in paths.items()}


def test_the_policy_grants_exactly_what_the_reconciler_needs() -> None:
    policy = load("multipass-reconciler.policy.hcl")
    caps = capabilities(policy)
    prefix = "nomad/jobs/multipass-reconciler"
    assert caps[prefix] == ["read"]  # secrets: never written
    assert "write" not in caps[f"{prefix}/pools/*"]  # specs are people's to write
    assert "write" in caps[f"{prefix}/status/*"] and "write" in caps[f"{prefix}/leader"]
    assert all("destroy" not in c for c in caps.values())
    assert text(block(policy["node"])["policy"]) == "write"  # drain, eligibility, purge


def as_enforced(policy: dict[str, Any]) -> Policy:
    """The policy file as the Nomad simulator enforces it (same globs, same capabilities)."""
    ns = block(next(iter(block(policy["namespace"]).values())))
    return Policy(
        variables={path: set(caps) for path, caps in capabilities(policy).items()},
        node=text(block(policy["node"])["policy"]),
        read_job="read-job" in [text(c) for c in ns.get("capabilities", [])],
    )


async def test_the_policy_is_enough_for_a_pool_s_whole_life() -> None:
    """The other half of least privilege: with only this policy the reconciler still works.

    Its token reads the credentials from the job's variable, grows a pool, shrinks it
    (drain, delete, purge), writes status and takes the leader lock; it cannot write specs.
    """
    config = SimConfig(seed=5, acl=True, boot_seconds=20, heartbeat_timeout=15, migrate_seconds=10)
    clock = ManualClock()
    async with Simulation(config, clock) as sim:
        token = sim.nomad_state.add_token(as_enforced(load("multipass-reconciler.policy.hcl")))
        admin = NomadSettings(
            address=sim.nomad.address, token=sim.nomad_state.add_token(MANAGEMENT)
        )
        async with NomadClient(admin) as people:
            await people.put_var(DEFAULT_PREFIX, imported_secrets(sim))
            await people.put_var(pool_path(DEFAULT_PREFIX, "web"), pool(2))
            # env={}: no MULTIPASS_* variables, so the credentials come from the variable.
            settings = Settings(DEFAULT_PREFIX, NomadSettings(sim.nomad.address, token), env={})
            limits = ExecutorLimits(call_timeout=5.0, attempts=2, backoff_max=0.05)
            async with connect(settings, clock=clock, limits=limits) as c:
                h = Harness(sim, c)
                assert len((await h.converge()).plans) == 1 and len(h.ready_nodes()) == 2
                await people.put_var(pool_path(DEFAULT_PREFIX, "web"), pool(1))
                await h.converge()
                assert len(h.instances()) == 1 and len(sim.nomad_state.nodes) == 1  # purged
                assert (await c.nomad.get_var(status_path(DEFAULT_PREFIX, "web"))).items
                _, lock_id = await c.nomad.lock_acquire(
                    leader_path(DEFAULT_PREFIX), ttl=15, lock_delay=15, items={"holder": "t"}
                )
                await c.nomad.lock_release(leader_path(DEFAULT_PREFIX), lock_id)
                with pytest.raises(PermissionDenied):
                    await c.nomad.put_var(pool_path(DEFAULT_PREFIX, "web"), pool(3))


def imported_secrets(sim: Simulation) -> dict[str, str]:
    """What `reconciler secrets import` would print for the simulator's client certificate."""
    cert, key = client_certs.load_pair(sim.certs.client_cert, sim.certs.client_key)
    body = client_certs.variable_json(
        cert,
        key,
        passphrase=sim.config.passphrase,
        server_cert_pem=client_certs.load_certificate(sim.certs.server_cert),
        address=sim.multipassd.address,
    )
    return json.loads(body)["Items"]  # type: ignore[no-any-return]


def pool(size: int) -> dict[str, str]:
    return {"min": str(size), "max": str(size), "cloud_init_vars": SERVERS}


def example_items(name: str) -> dict[str, str]:
    doc = load(f"pools/{name}")
    return {k: text(v) for k, v in block(doc["items"]).items()}


@pytest.mark.parametrize("name", ["fixed.nv.hcl", "autoscaled.nv.hcl", "custom-cloud-init.nv.hcl"])
def test_every_example_pool_is_a_valid_spec(name: str) -> None:
    doc = load(f"pools/{name}")
    path = text(doc["path"])
    assert path.startswith("nomad/jobs/multipass-reconciler/pools/")
    spec = parse_pool_spec(path.rsplit("/", 1)[1], example_items(name), index=1)
    if name == "autoscaled.nv.hcl":
        assert spec.policy is not None and len(spec.policy.checks) == 3


def test_the_migration_guide_s_pool_is_a_valid_spec() -> None:
    """docs/migrating.md's "after" example is what people copy: it must stay valid."""
    doc = (MANIFESTS.parent / "docs/migrating.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```hcl\n")[1:]]
    after = next(b for b in blocks if b.startswith("path = "))
    parsed = clean(hcl2.loads(after))
    items = {k: text(v) for k, v in block(parsed["items"]).items()}
    spec = parse_pool_spec(text(parsed["path"]).rsplit("/", 1)[1], items, index=1)
    assert spec.node_class == "hashistack" and spec.policy is not None


def test_the_custom_cloud_init_makes_a_nomad_client_of_the_pool() -> None:
    spec = parse_pool_spec("builders", example_items("custom-cloud-init.nv.hcl"), index=1)
    name = ownership.instance_name("builders", spec.template_hash, 0)
    node = interpret(render_cloud_init(spec, name), hostname=name)
    assert node.name == name and node.node_class == "builder"
    assert node.meta[ownership.META_POOL] == "builders"
