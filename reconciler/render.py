"""Cloud-init rendering: Jinja2's sandbox, undefined variables as errors, checked output.

The pool's ``cloud_init`` item (or the shipped default template) is rendered
once per instance. The output must be ``#cloud-config`` YAML under a size
limit; anything else is a RenderError naming the pool and what is wrong.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import jinja2
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from reconciler import ownership
from reconciler.errors import PermanentError


class TemplateInputs(Protocol):
    """What rendering reads of a pool's spec (spec.PoolSpec is one); spec imports this
    module to check templates, so this one names no type of spec's."""

    @property
    def pool(self) -> str: ...
    @property
    def template_hash(self) -> str: ...
    @property
    def node_class(self) -> str: ...
    @property
    def datacenter(self) -> str: ...
    @property
    def node_pool(self) -> str: ...
    @property
    def cpus(self) -> int: ...
    @property
    def memory(self) -> str: ...
    @property
    def disk(self) -> str: ...
    @property
    def image(self) -> str: ...
    @property
    def cloud_init(self) -> str | None: ...
    @property
    def cloud_init_vars(self) -> Mapping[str, Any]: ...


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


class _Sandbox(ImmutableSandboxedEnvironment):
    """Also refuses ``*`` and ``**`` results too large for user-data.

    Rendering runs inside the reconciler, so ``{{ 'a' * 10**12 }}`` or
    ``{{ (10**10)**(10**10) }}`` in one pool's template would exhaust its memory
    or CPU and stop every pool. Anything that large could never fit under
    MAX_USER_DATA anyway. (Other filters can still allocate a lot, e.g. center();
    only rendering in a resource-limited subprocess would bound those.)
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
        elif _power_bits(left, right) > 8 * MAX_USER_DATA:
            raise SecurityError(f"{left} ** {right} is too large for user-data")
        return super().call_binop(context, operator, left, right)


def _power_bits(base: object, exponent: object) -> int:
    """A lower bound on the bits of an int ``base ** exponent``, found without computing it."""
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return 0
    return (abs(base).bit_length() - 1) * exponent


def _check_repeat(sequence: object, times: object) -> None:
    if not (isinstance(sequence, (str, list, tuple)) and isinstance(times, int)):
        return
    if len(sequence) * times > MAX_USER_DATA:
        raise SecurityError(
            f"repeating {len(sequence)} items {times} times exceeds the user-data limit "
            f"of {MAX_USER_DATA}"
        )


@functools.cache
def environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
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


# Compiling is most of what parsing a pool spec costs, and every pass parses each
# pool: the same few texts come back again and again. Keyed by the text itself, so
# an edited template is compiled afresh at once. A compiled Template is immutable
# and safe to render many times. Errors are not cached (lru_cache keeps no raise).
@functools.lru_cache(maxsize=256)
def compile_template(text: str) -> jinja2.Template:
    """Compile or raise ``jinja2.TemplateSyntaxError`` (spec validation reports it)."""
    return environment().from_string(text)


def template_context(spec: TemplateInputs, instance: str) -> dict[str, Any]:
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


def render_cloud_init(spec: TemplateInputs, instance: str) -> str:
    text = spec.cloud_init if spec.cloud_init is not None else default_template_text()
    where = f"pool {spec.pool}: cloud_init"
    try:
        out = compile_template(text).render(template_context(spec, instance))
    except jinja2.UndefinedError as exc:
        raise RenderError(f"{where}: {exc.message}; define it in cloud_init_vars") from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"{where}: {exc}") from None
    except Exception as exc:
        # Python errors inside the template ({{ 1/0 }}, iterating a number given in
        # cloud_init_vars...) are the spec's fault too, never the reconciler's: report
        # them like any other template error so one pool cannot stop a pass.
        raise RenderError(
            f"{where}: rendering failed with {type(exc).__name__}: {exc} "
            "(check the template and the values in cloud_init_vars)"
        ) from None
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
    except RecursionError:
        raise RenderError(f"{where}: rendered user-data is nested too deeply to read") from None
    if not isinstance(doc, dict):
        raise RenderError(f"{where}: rendered user-data must be a YAML mapping")
    return out
