"""Cloud-init rendering: the default template makes a real Nomad client config."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import hcl2
import pytest
import yaml

from reconciler import ownership
from reconciler.render import MAX_USER_DATA, RenderError, render_cloud_init
from reconciler.sim.cloudinit import interpret
from reconciler.spec import PoolSpec, SpecError, parse_pool_spec


def spec(**items: str) -> PoolSpec:
    base = {"min": "1", "max": "3", "cloud_init_vars": "servers: [10.0.0.2, 'nomad.lab:4647']"}
    return parse_pool_spec("web", {**base, **items})


def _with(**fields: Any) -> PoolSpec:
    """A valid spec with fields swapped afterwards, as if validation had let them through."""
    return replace(spec(), **fields)


def test_default_template_is_cloud_config_with_a_nomad_client() -> None:
    s = spec(node_class="gpu", datacenter="lab", node_pool="fast")
    name = ownership.instance_name("web", s.template_hash, 0)
    out = render_cloud_init(s, name)
    assert out.startswith("#cloud-config")
    doc = yaml.safe_load(out)
    assert doc["hostname"] == name
    [config] = [f for f in doc["write_files"] if f["path"] == "/etc/nomad.d/nomad.hcl"]
    hcl = hcl2.loads(config["content"])
    assert "nomad" in " ".join(doc["runcmd"])
    assert hcl  # parses as HCL
    # What a VM booting this registers as, read the way the simulator reads it.
    reg = interpret(out, hostname="ignored")
    assert (reg.name, reg.node_class, reg.datacenter, reg.node_pool) == (name, "gpu", "lab", "fast")
    assert reg.meta == {ownership.META_POOL: "web", ownership.META_TEMPLATE_HASH: s.template_hash}


def test_values_are_quoted_not_injected() -> None:
    # Validation refuses such a server; the template must still quote what it is given.
    s = _with(cloud_init_vars={"servers": ['a" }\nclient { enabled = false']})
    out = render_cloud_init(s, "web-bcdfg-0")
    reg = interpret(out, hostname="x")  # still one client block, still enabled
    assert reg.name == "web-bcdfg-0"


def test_sandbox_refuses_reaching_into_python() -> None:
    # Caught when the spec is validated, so the pool plans nothing.
    with pytest.raises(SpecError, match=r"cloud_init: access to attribute '__class__'.* is unsafe"):
        spec(cloud_init="#cloud-config\nx: {{ ''.__class__.__mro__ }}\n")


def test_size_limit() -> None:
    big = "#cloud-config\nx: '{% for _ in range(" + str(MAX_USER_DATA) + ") %}a{% endfor %}'\n"
    with pytest.raises(SpecError, match=f"the limit is {MAX_USER_DATA}"):
        spec(cloud_init=big)


def test_render_errors_name_the_pool() -> None:
    broken = _with(cloud_init="#cloud-config\nx: {{ missing }}\n")
    with pytest.raises(RenderError, match="pool web: cloud_init: 'missing' is undefined"):
        render_cloud_init(broken, "web-bcdfg-0")


def test_python_errors_inside_the_template_are_render_errors() -> None:
    # Before: ZeroDivisionError escaped render_cloud_init and stopped the whole pass.
    with pytest.raises(
        RenderError,
        match=r"pool web: cloud_init: rendering failed with ZeroDivisionError: division by zero",
    ):
        render_cloud_init(_with(cloud_init="#cloud-config\nx: {{ 1/0 }}\n"), "web-bcdfg-0")


@pytest.mark.parametrize(
    "expression",
    ["'a' * 10**12", "10**12 * [1]", "(10**10) ** (10**10)", "2 ** (10**9)"],
)
def test_results_too_large_for_user_data_are_refused_before_they_are_built(
    expression: str,
) -> None:
    # Unguarded, each of these exhausts the reconciler's memory or CPU.
    with pytest.raises(RenderError, match="user-data"):
        render_cloud_init(_with(cloud_init="#cloud-config\nx: {{ " + expression + " }}\n"), "w-0")


def test_ordinary_arithmetic_still_renders() -> None:
    template = "#cloud-config\nx: '{{ 'ab' * 3 }}{{ 2 ** 10 }}{{ 3 * 'c' }}{{ 2 ** 0.5 }}'\n"
    out = render_cloud_init(_with(cloud_init=template), "w-0")
    assert yaml.safe_load(out)["x"] == "ababab1024ccc1.4142135623730951"
