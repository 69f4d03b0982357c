"""Cloud-init rendering: Jinja2's sandbox, undefined variables as errors, checked output.

The pool's ``cloud_init`` item (or the shipped default template) is rendered
once per instance. The output must be ``#cloud-config`` YAML under a size
limit; anything else is a RenderError naming the pool and what is wrong.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from reconciler import ownership
from reconciler.errors import PermanentError

if TYPE_CHECKING:
    from reconciler.spec import PoolSpec

DEFAULT_TEMPLATE = "nomad-client.yaml.j2"
# cloud-init has no hard limit, but user-data travels in a cloud-init ISO that
# multipass builds; 64 KiB keeps far below every practical limit and catches a
# template that loops out of control.
MAX_USER_DATA = 64 * 1024

# Names the reconciler gives every template; cloud_init_vars may not redefine them.
BUILTIN_NAMES = frozenset(
    {
        "instance",
        "hostname",
        "pool",
        "template_hash",
        "node_class",
        "datacenter",
        "node_pool",
        "cpus",
        "memory",
        "disk",
        "image",
        "meta_pool_key",
        "meta_hash_key",
        "vars",
    }
)


class RenderError(PermanentError):
    """The cloud-init template cannot produce valid user-data."""


def hcl_string(value: object) -> str:
    """Quote a value as an HCL string literal (JSON escaping is valid HCL escaping)."""
    return json.dumps(str(value)).replace("${", "$${").replace("%{", "%%{")


@functools.cache
def environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hcl"] = hcl_string
    env.filters["json"] = lambda v: json.dumps(v)
    return env


@functools.cache
def default_template_text() -> str:
    """The shipped template: inside the wheel, or in the source checkout."""
    packaged = resources.files("reconciler").joinpath("_templates", "cloud-init", DEFAULT_TEMPLATE)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source = Path(__file__).resolve().parent.parent / "templates" / "cloud-init" / DEFAULT_TEMPLATE
    return source.read_text(encoding="utf-8")


def compile_template(text: str) -> jinja2.Template:
    """Compile or raise ``jinja2.TemplateSyntaxError`` (spec validation reports it)."""
    return environment().from_string(text)


def template_context(spec: PoolSpec, instance: str) -> dict[str, Any]:
    user_vars = dict(spec.cloud_init_vars)
    return {
        **user_vars,
        "vars": user_vars,
        "instance": instance,
        "hostname": instance,
        "pool": spec.pool,
        "template_hash": spec.template_hash,
        "node_class": spec.node_class,
        "datacenter": spec.datacenter,
        "node_pool": spec.node_pool,
        "cpus": spec.cpus,
        "memory": spec.memory,
        "disk": spec.disk,
        "image": spec.image,
        "meta_pool_key": ownership.META_POOL,
        "meta_hash_key": ownership.META_TEMPLATE_HASH,
    }


def render_cloud_init(spec: PoolSpec, instance: str) -> str:
    text = spec.cloud_init if spec.cloud_init is not None else default_template_text()
    where = f"pool {spec.pool}: cloud_init"
    try:
        out = compile_template(text).render(template_context(spec, instance))
    except jinja2.UndefinedError as exc:
        raise RenderError(f"{where}: {exc.message}; define it in cloud_init_vars") from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"{where}: {exc}") from None
    size = len(out.encode())
    if size > MAX_USER_DATA:
        raise RenderError(
            f"{where}: rendered user-data is {size} bytes; the limit is {MAX_USER_DATA}"
        )
    if out.split("\n", 1)[0].rstrip() != "#cloud-config":
        raise RenderError(f"{where}: rendered user-data must start with a '#cloud-config' line")
    try:
        doc = yaml.safe_load(out)
    except yaml.YAMLError as exc:
        raise RenderError(f"{where}: rendered user-data is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise RenderError(f"{where}: rendered user-data must be a YAML mapping")
    return out
