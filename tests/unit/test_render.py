"""Cloud-init rendering: the default template makes a real Nomad client config."""

from __future__ import annotations

import hcl2
import pytest
import yaml

from reconciler import ownership
from reconciler.render import MAX_USER_DATA, RenderError, render_cloud_init
from reconciler.sim.cloudinit import interpret
from reconciler.spec import SpecError, parse_pool_spec


def spec(**items: str):  # type: ignore[no-untyped-def]
    base = {"min": "1", "max": "3", "cloud_init_vars": "servers: [10.0.0.2, 'nomad.lab:4647']"}
    return parse_pool_spec("web", {**base, **items})


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
    s = spec(cloud_init_vars="servers: ['a\" }\\nclient { enabled = false']")
    out = render_cloud_init(s, "web-bcdfg-0")
    reg = interpret(out, hostname="x")  # still one client block, still enabled
    assert reg.name == "web-bcdfg-0"


def test_sandbox_refuses_reaching_into_python() -> None:
    # Caught when the spec is validated, so the pool plans nothing.
    with pytest.raises(SpecError, match=r"cloud_init: access to attribute '__class__'.* is unsafe"):
        spec(cloud_init="#cloud-config\nx: {{ ''.__class__.__mro__ }}\n")


def test_size_limit() -> None:
    big = "#cloud-config\nx: '{{ 'a' * " + str(MAX_USER_DATA + 1) + " }}'\n"
    with pytest.raises(SpecError, match=f"the limit is {MAX_USER_DATA}"):
        spec(cloud_init=big)


def test_render_errors_name_the_pool() -> None:
    s = spec()
    broken = type(s).__new__(type(s))
    for slot in type(s).__slots__:
        object.__setattr__(broken, slot, getattr(s, slot))
    object.__setattr__(broken, "cloud_init", "#cloud-config\nx: {{ missing }}\n")
    with pytest.raises(RenderError, match="pool web: cloud_init: 'missing' is undefined"):
        render_cloud_init(broken, "web-bcdfg-0")
