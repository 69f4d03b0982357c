"""manifests/: the job, its ACL policy and the example pools parse and say what matters."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import hcl2
import pytest

from reconciler import ownership
from reconciler.render import render_cloud_init
from reconciler.sim.cloudinit import interpret
from reconciler.spec import parse_pool_spec

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


def test_the_custom_cloud_init_makes_a_nomad_client_of_the_pool() -> None:
    spec = parse_pool_spec("builders", example_items("custom-cloud-init.nv.hcl"), index=1)
    name = ownership.instance_name("builders", spec.template_hash, 0)
    node = interpret(render_cloud_init(spec, name), hostname=name)
    assert node.name == name and node.node_class == "builder"
    assert node.meta[ownership.META_POOL] == "builders"
