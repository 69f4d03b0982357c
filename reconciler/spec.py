"""PoolSpec: one pool's desired state, parsed and validated from its variable's items.

Nomad variable items are all strings, so every item is parsed here, every
problem is collected (a person fixing a spec wants all of them at once), and
each names the item, what is wrong, and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jinja2
import yaml

from reconciler import ownership
from reconciler.errors import PermanentError
from reconciler.render import (
    BUILTIN_NAMES,
    RenderError,
    compile_template,
    default_template_text,
    render_cloud_init,
)
from reconciler.scale_in import STRATEGIES
from reconciler.scaling.policy import Policy, PolicyError, parse_policy
from reconciler.units import (
    CountOrPercent,
    format_size,
    parse_bool,
    parse_count_or_percent,
    parse_duration,
    parse_size,
)

MAX_POOL_SIZE = 10_000


@dataclass(frozen=True)
class Item:
    name: str
    kind: str
    default: str | None
    description: str


# The spec reference (docs/spec.md is written from the same facts).
ITEMS: tuple[Item, ...] = (
    Item("min", "int", None, "fewest members; required"),
    Item("max", "int", None, f"most members; required, at most {MAX_POOL_SIZE}"),
    Item("count", "int", None, "fixed size, clamped to [min, max]; default: min"),
    Item("image", "string", "24.04", "multipass image (release or alias)"),
    Item("cpus", "int", "2", "vCPUs per instance, 1..64"),
    Item("memory", "size", "2G", "memory per instance, at least 512M"),
    Item("disk", "size", "10G", "disk per instance, at least 1G"),
    Item("node_class", "string", "<pool name>", "Nomad node_class the clients register with"),
    Item("datacenter", "string", "dc1", "Nomad datacenter of the clients"),
    Item("node_pool", "string", "default", "Nomad node pool of the clients"),
    Item("cloud_init", "template", "<shipped nomad-client.yaml.j2>", "Jinja2 cloud-init template"),
    Item("cloud_init_vars", "yaml map", "{}", "variables for the template (servers: [...])"),
    Item("drain_deadline", "duration", "1h", "how long a drain may take before the VM goes anyway"),
    Item("drain_ignore_system_jobs", "bool", "false", "drains leave system jobs running"),
    Item("node_purge", "bool", "true", "purge the Nomad node once its VM is gone"),
    Item("scale_in", "enum", "least_busy", "which members go first: " + ", ".join(STRATEGIES)),
    Item("max_surge", "count|percent", "1", "extra members allowed during a replacement"),
    Item("max_unavailable", "count|percent", "0", "ready members that may be missing in a rollout"),
    Item("join_timeout", "duration", "10m", "a VM not joined by then is unhealthy"),
    Item("unhealthy_timeout", "duration", "5m", "node down or VM stopped this long: unhealthy"),
    Item("max_unhealthy", "count|percent", "40%", "above this many unhealthy, remediation stops"),
    Item("paused", "bool", "false", "plan and do nothing for this pool"),
    Item("policy", "yaml", None, "autoscaling policy: checks, cooldown (docs/autoscaling.md)"),
)
ITEM_NAMES = tuple(i.name for i in ITEMS)


class SpecError(PermanentError):
    """A pool spec that cannot be acted on. ``problems`` lists each, naming its item."""

    def __init__(self, pool: str, problems: list[str]) -> None:
        self.pool = pool
        self.problems = problems
        super().__init__(f"pool {pool}: invalid spec: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class PoolSpec:
    pool: str
    index: int
    min: int
    max: int
    count: int | None
    count_clamped_from: int | None
    image: str
    cpus: int
    memory_bytes: int
    disk_bytes: int
    node_class: str
    datacenter: str
    node_pool: str
    cloud_init: str | None
    cloud_init_vars: Mapping[str, Any]
    drain_deadline: float
    drain_ignore_system_jobs: bool
    node_purge: bool
    scale_in: str
    max_surge: CountOrPercent
    max_unavailable: CountOrPercent
    join_timeout: float
    unhealthy_timeout: float
    max_unhealthy: CountOrPercent
    paused: bool
    policy: Policy | None
    template_hash: str

    @property
    def memory(self) -> str:
        return format_size(self.memory_bytes)

    @property
    def disk(self) -> str:
        return format_size(self.disk_bytes)


def template_hash(
    *,
    image: str,
    cpus: int,
    memory_bytes: int,
    disk_bytes: int,
    template_text: str,
    cloud_init_vars: Mapping[str, Any],
    node_class: str,
    datacenter: str,
    node_pool: str,
) -> str:
    """Hash of exactly what shapes an instance; sizing (min/max/count) and policy stay out."""
    canonical = json.dumps(
        {
            "image": image,
            "cpus": cpus,
            "memory": memory_bytes,
            "disk": disk_bytes,
            "template": template_text,
            "vars": cloud_init_vars,
            "node_class": node_class,
            "datacenter": datacenter,
            "node_pool": node_pool,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return ownership.encode_hash(hashlib.sha256(canonical.encode()).digest())


class _Parser:
    """Collects problems while reading items, so all are reported at once."""

    def __init__(self, items: Mapping[str, str]) -> None:
        self.items = items
        self.problems: list[str] = []

    def get(self, name: str, parse: Callable[[str], Any], default: Any) -> Any:
        raw = self.items.get(name)
        if raw is None:
            return default
        if not isinstance(raw, str):
            self.problems.append(
                f"{name}: {raw!r} is not a string (Nomad variable items are strings)"
            )
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.problems.append(f"{name}: {exc}")
            return default

    def int_in(self, name: str, lo: int, hi: int, default: int | None) -> int | None:
        def parse(raw: str) -> int:
            s = raw.strip()
            if not s.lstrip("-").isdigit():
                raise ValueError(f"{raw!r} is not a whole number")
            value = int(s)
            if not lo <= value <= hi:
                raise ValueError(f"{value} is not within {lo}..{hi}")
            return value

        return self.get(name, parse, default)  # type: ignore[no-any-return]


def _yaml_map(raw: str) -> dict[str, Any]:
    try:
        value = yaml.safe_load(raw) if raw.strip() else {}
    except yaml.YAMLError as exc:
        raise ValueError(f"is not valid YAML: {str(exc).splitlines()[0]}") from None
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("must be a YAML mapping with string keys, e.g. 'servers: [10.0.0.2]'")
    return value


def _name(raw: str) -> str:
    s = raw.strip()
    if not s or any(c.isspace() for c in s) or '"' in s:
        raise ValueError(f"{raw!r} must be a non-empty name without spaces or quotes")
    return s


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.strip() not in options:
            raise ValueError(f"{raw!r} is not one of {', '.join(options)}")
        return raw.strip()

    return parse


def _min_size(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        size = parse_size(raw)
        if size < minimum:
            raise ValueError(f"{raw!r} is below the minimum {format_size(minimum)}")
        return size

    return parse


def parse_pool_spec(pool: str, items: Mapping[str, str], index: int = 0) -> PoolSpec:
    """Parse a pool variable's items; raise SpecError listing every problem."""
    p = _Parser(items)
    if not ownership.POOL_NAME_RE.match(pool):
        p.problems.append(
            f"pool name {pool!r}: must be lower-case letters, digits and dashes, starting with a "
            "letter, at most 42 characters (it prefixes instance names)"
        )
    unknown = sorted(set(items) - set(ITEM_NAMES))
    for name in unknown:
        p.problems.append(f"{name}: unknown item; allowed: {', '.join(ITEM_NAMES)}")

    for required in ("min", "max"):
        if required not in items:
            p.problems.append(f"{required}: required; set it with `nomad var put ... {required}=N`")
    lo = p.int_in("min", 0, MAX_POOL_SIZE, 0) or 0
    hi = p.int_in("max", 1, MAX_POOL_SIZE, max(lo, 1))
    hi = hi if hi is not None else max(lo, 1)
    if hi < lo:
        p.problems.append(f"max: {hi} is below min ({lo})")
    count = p.int_in("count", 0, 100 * MAX_POOL_SIZE, None)
    clamped_from = None
    if count is not None and not lo <= count <= hi:
        clamped_from, count = count, min(max(count, lo), hi)

    image = p.get("image", _name, "24.04")
    cpus = p.int_in("cpus", 1, 64, 2) or 2
    memory = p.get("memory", _min_size(512 * 1024**2), 2 * 1024**3)
    disk = p.get("disk", _min_size(1024**3), 10 * 1024**3)
    node_class = p.get("node_class", _name, pool)
    datacenter = p.get("datacenter", _name, "dc1")
    node_pool = p.get("node_pool", _name, "default")
    cloud_init = items.get("cloud_init")
    cloud_init_vars = p.get("cloud_init_vars", _yaml_map, {})
    shadowed = sorted(set(cloud_init_vars) & BUILTIN_NAMES)
    if shadowed:
        p.problems.append(
            f"cloud_init_vars: {', '.join(shadowed)} are given by the reconciler and cannot be set"
        )
    template_text = cloud_init if cloud_init is not None else default_template_text()
    try:
        compile_template(template_text)
    except jinja2.TemplateSyntaxError as exc:
        p.problems.append(f"cloud_init: template syntax error on line {exc.lineno}: {exc.message}")
        template_text = ""

    policy = None
    if "policy" in items:
        try:
            policy = parse_policy(str(items["policy"]))
        except PolicyError as exc:
            p.problems.extend(exc.problems)
        if count is not None:
            p.problems.append(
                "count: cannot be set together with policy (the policy decides the count "
                "between min and max); remove one of them"
            )
    spec = PoolSpec(
        pool=pool,
        index=index,
        min=lo,
        max=hi,
        count=count,
        count_clamped_from=clamped_from,
        image=image,
        cpus=cpus,
        memory_bytes=memory,
        disk_bytes=disk,
        node_class=node_class,
        datacenter=datacenter,
        node_pool=node_pool,
        cloud_init=cloud_init,
        cloud_init_vars=MappingProxyType(dict(cloud_init_vars)),
        drain_deadline=p.get("drain_deadline", parse_duration, 3600.0),
        drain_ignore_system_jobs=p.get("drain_ignore_system_jobs", parse_bool, False),
        node_purge=p.get("node_purge", parse_bool, True),
        scale_in=p.get("scale_in", _choice(STRATEGIES), "least_busy"),
        max_surge=p.get("max_surge", parse_count_or_percent, CountOrPercent(1)),
        max_unavailable=p.get("max_unavailable", parse_count_or_percent, CountOrPercent(0)),
        join_timeout=p.get("join_timeout", parse_duration, 600.0),
        unhealthy_timeout=p.get("unhealthy_timeout", parse_duration, 300.0),
        max_unhealthy=p.get("max_unhealthy", parse_count_or_percent, CountOrPercent(40, True)),
        paused=p.get("paused", parse_bool, False),
        policy=policy,
        template_hash=template_hash(
            image=image,
            cpus=cpus,
            memory_bytes=memory,
            disk_bytes=disk,
            template_text=template_text,
            cloud_init_vars=cloud_init_vars,
            node_class=node_class,
            datacenter=datacenter,
            node_pool=node_pool,
        ),
    )
    if not p.problems and template_text:
        # Render once for a sample instance: a missing variable is a spec problem
        # now, not a launch failure later.
        try:
            render_cloud_init(spec, ownership.instance_name(pool, spec.template_hash, 0))
        except RenderError as exc:
            p.problems.append(str(exc).removeprefix(f"pool {pool}: "))
    if p.problems:
        raise SpecError(pool, p.problems)
    return spec
