"""PoolSpec: one pool's desired state, parsed and validated from its variable's items.

Nomad variable items are all strings, so every item is parsed here, every
problem is collected (a person fixing a spec wants all of them at once), and
each names the item, what is wrong, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar, overload

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
from reconciler.scaling.policy import Policy, PolicyError, parse_policy
from reconciler.units import (
    CountOrPercent,
    format_duration,
    format_size,
    parse_bool,
    parse_count_or_percent,
    parse_duration,
    parse_size,
    yaml_problem,
)

MAX_POOL_SIZE = 10_000
# Values in cloud_init_vars after YAML aliases are expanded: rendering and the template
# hash walk them all, so a few nested aliases could otherwise expand to millions.
MAX_VARS_VALUES = 10_000
# Floors under durations whose zero would make the pool act on every pass.
MIN_DRAIN_DEADLINE = 1.0
MIN_JOIN_TIMEOUT = 60.0
MIN_UNHEALTHY_TIMEOUT = 30.0
# Nomad's own rule for node pool names; a client configured with another name (or the
# built-in "all") refuses to start, so its VM could never join.
_NODE_POOL_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
# What the shipped template reads from cloud_init_vars (its header comment documents them).
DEFAULT_TEMPLATE_VARS = ("servers", "nomad_version", "network_interface")
# Characters of a Debian package version (epoch:upstream-revision); the value lands in a
# shell command, so anything else is refused rather than quoted.
_APT_VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")

# Which members go first when the pool shrinks: the Nomad Autoscaler's node selector
# names (each is one function in reconciler.plan.scale_in, which checks it has these).
SCALE_IN_STRATEGIES = ("least_busy", "empty", "empty_ignore_system", "newest", "oldest")
# How launches are spread over the pool's hosts (reconciler.plan.placement.POLICIES).
PLACEMENTS = ("spread", "pack")

_N = TypeVar("_N", int, float)


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
    Item("node_pool", "string", "default", "Nomad node pool: letters, digits, - and _; not all"),
    Item("cloud_init", "template", "<shipped nomad-client.yaml.j2>", "Jinja2 cloud-init template"),
    Item("cloud_init_vars", "yaml map", "{}", "variables for the template (servers: [...])"),
    Item("drain_deadline", "duration", "1h", "how long a drain may take (at least 1s)"),
    Item("drain_ignore_system_jobs", "bool", "false", "drains leave system jobs running"),
    Item("node_purge", "bool", "true", "purge the Nomad node once its VM is gone"),
    Item(
        "scale_in",
        "enum",
        "least_busy",
        "which members go first: " + ", ".join(SCALE_IN_STRATEGIES),
    ),
    Item("max_surge", "count|percent", "1", "extra members allowed during a replacement"),
    Item("max_unavailable", "count|percent", "0", "ready members that may be missing in a rollout"),
    Item("join_timeout", "duration", "10m", "a VM not joined by then is unhealthy (at least 1m)"),
    Item("unhealthy_timeout", "duration", "5m", "node down or VM stopped this long (at least 30s)"),
    Item("max_unhealthy", "count|percent", "40%", "above this many unhealthy, remediation stops"),
    Item("paused", "bool", "false", "plan and do nothing for this pool"),
    Item("hosts", "list", "*", "Multipass hosts the pool may use: names or globs, comma-separated"),
    Item("placement", "enum", "spread", "how members go over hosts: " + ", ".join(PLACEMENTS)),
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
    # Where members may go: not in the template hash (moving hosts is not a new spec).
    hosts: tuple[str, ...] = ("*",)
    placement: str = "spread"

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

    # A whole-number default comes back when the item is absent or wrong: the result is an int.
    @overload
    def int_in(self, name: str, lo: int, hi: int, default: int) -> int: ...
    @overload
    def int_in(self, name: str, lo: int, hi: int, default: None) -> int | None: ...
    def int_in(self, name: str, lo: int, hi: int, default: int | None) -> int | None:
        def parse(raw: str) -> int:
            s = raw.strip()
            # isascii: str.isdigit also accepts digits such as '²' that int() then refuses.
            if not (s.isascii() and s.removeprefix("-").isdigit()):
                raise ValueError(f"{raw!r} is not a whole number")
            value = int(s)
            if not lo <= value <= hi:
                raise ValueError(f"{value} is not within {lo}..{hi}")
            return value

        return self.get(name, parse, default)  # type: ignore[no-any-return]


def _yaml_map(raw: str) -> dict[str, Any]:
    try:
        value = yaml.safe_load(raw)  # None for "", blanks and comments alone
    except yaml.YAMLError as exc:
        raise ValueError(f"is not valid YAML: {yaml_problem(exc)}") from None
    except RecursionError:
        raise ValueError("is nested too deeply to read") from None
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("must be a YAML mapping with string keys, e.g. 'servers: [10.0.0.2]'")
    if _count_values(value, MAX_VARS_VALUES + 1) > MAX_VARS_VALUES:
        raise ValueError(
            f"holds more than {MAX_VARS_VALUES} values once YAML aliases are expanded; "
            "a template needs far fewer"
        )
    return value


def _count_values(value: Any, limit: int) -> int:
    """Values in a YAML tree as rendering sees it (aliases repeated), counted up to ``limit``.

    Iterative and bounded, so a self-referencing alias or a billion-laughs document
    stops at the limit instead of recursing or expanding without end.
    """
    seen, stack = 0, [value]
    while stack and seen < limit:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return seen


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


_HOST_PATTERN_RE = re.compile(r"^[a-z0-9*?\[\]!-]{1,64}$")


def _host_patterns(raw: str) -> tuple[str, ...]:
    """``host1, host2`` or ``rack-*``: the hosts a pool may use, by name or glob."""
    patterns = tuple(p.strip() for p in raw.split(",") if p.strip())
    if not patterns:
        raise ValueError("is empty; give host names or globs, comma-separated (default: *)")
    bad = [p for p in patterns if not _HOST_PATTERN_RE.match(p)]
    if bad:
        raise ValueError(
            f"{', '.join(map(repr, bad))}: a host name or a glob of lowercase letters, "
            "digits and * ? [ ] only"
        )
    return patterns


def _node_pool(raw: str) -> str:
    s = raw.strip()
    if not _NODE_POOL_RE.match(s) or s == "all":
        raise ValueError(
            f"{raw!r} must be 1-128 letters, digits, '-' or '_', and not 'all' "
            "(Nomad refuses to start a client in any other node pool)"
        )
    return s


def _at_least(
    parse: Callable[[str], _N], show: Callable[[_N], str], minimum: _N, why: str
) -> Callable[[str], _N]:
    """A parser of ``parse``'s values that refuses those below ``minimum``, saying why."""

    def parse_bounded(raw: str) -> _N:
        value = parse(raw)
        if value < minimum:
            raise ValueError(f"{raw!r} must be at least {show(minimum)} ({why})")
        return value

    return parse_bounded


def _duration_at_least(minimum: float, why: str) -> Callable[[str], float]:
    return _at_least(parse_duration, format_duration, minimum, why)


def _default_template_var_problems(variables: Mapping[str, Any]) -> list[str]:
    """What the shipped template needs from cloud_init_vars; a custom template decides its own."""
    problems = [
        f"cloud_init_vars.{name}: not used by the shipped template, which reads only "
        f"{', '.join(DEFAULT_TEMPLATE_VARS)} (a custom cloud_init template may use other names)"
        for name in sorted(set(variables) - set(DEFAULT_TEMPLATE_VARS) - BUILTIN_NAMES)
    ]
    problems += _servers_problems(variables.get("servers"))
    version = variables.get("nomad_version")
    if version is not None and not (isinstance(version, str) and _APT_VERSION_RE.match(version)):
        problems.append(
            f"cloud_init_vars.nomad_version: {version!r} must be an apt version string such as "
            "'1.9.3-1' (quote it: YAML reads 1.10 as the number 1.1)"
        )
    interface = variables.get("network_interface")
    if interface is not None and not (isinstance(interface, str) and interface.strip()):
        problems.append(
            f"cloud_init_vars.network_interface: {interface!r} must be an interface name "
            "such as 'eth0'"
        )
    return problems


def _servers_problems(servers: Any) -> list[str]:
    example = "e.g. 'servers: [10.0.0.2, nomad.lab:4647]'"
    if servers is None:
        return []  # taken from Nomad at launch (GET /v1/status/peers): reconciler.servers
    if not isinstance(servers, list):
        return [
            f"cloud_init_vars.servers: {servers!r} must be a list of Nomad server addresses, "
            f"{example} (a single server too: 'servers: [nomad.lab]')"
        ]
    if not servers:
        return [
            "cloud_init_vars.servers: is empty; a VM needs at least one Nomad server "
            f"address to join, {example}"
        ]
    return [
        f"cloud_init_vars.servers: entry {i} ({s!r}) must be a host name or address "
        "without spaces, optionally with :port, e.g. 10.0.0.2 or nomad.lab:4647 "
        "(quote it if YAML reads it as a number)"
        for i, s in enumerate(servers, 1)
        if not isinstance(s, str) or not s.strip() or any(c.isspace() for c in s.strip())
    ]


def _min_size(minimum: int) -> Callable[[str], int]:
    return _at_least(
        parse_size, format_size, minimum, "the smallest VM an Ubuntu Nomad client runs in"
    )


def _check_compiles(text: str, problems: list[str]) -> None:
    """Add to ``problems`` why ``text`` does not compile as a template, if it does not."""
    try:
        compile_template(text)
    except jinja2.TemplateSyntaxError as exc:
        problems.append(f"cloud_init: template syntax error on line {exc.lineno}: {exc.message}")
    except Exception as exc:  # e.g. RecursionError from absurd nesting: still the spec's fault
        problems.append(f"cloud_init: the template cannot be compiled: {type(exc).__name__}: {exc}")


# Rendered in place of the servers a pool without `servers` discovers at launch.
SAMPLE_SERVERS = ("127.0.0.1:4647",)


def needs_servers(spec: PoolSpec) -> bool:
    """The shipped template with no `servers`: they are taken from Nomad at launch."""
    return spec.cloud_init is None and "servers" not in spec.cloud_init_vars


def with_servers(spec: PoolSpec, servers: Sequence[str]) -> PoolSpec:
    """``spec`` rendering ``servers``; the template hash stays the spec's own.

    Discovered servers are not part of the instance's shape: replacing a Nomad
    server must not roll every VM (a running client learns the new set by itself).
    """
    variables = MappingProxyType({**spec.cloud_init_vars, "servers": list(servers)})
    return dataclasses.replace(spec, cloud_init_vars=variables)


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
    lo = p.int_in("min", 0, MAX_POOL_SIZE, 0)
    # max=0 (with min=0) is an empty pool: one that is kept, with no members. An absent
    # or wrong max is already a problem; reading it as min adds no second one.
    hi = p.int_in("max", 0, MAX_POOL_SIZE, lo)
    if hi < lo:
        p.problems.append(f"max: {hi} is below min ({lo})")
    count = p.int_in("count", 0, 100 * MAX_POOL_SIZE, None)
    clamped_from = None
    if count is not None and not lo <= count <= hi:
        clamped_from, count = count, min(max(count, lo), hi)

    image = p.get("image", _name, "24.04")
    cpus = p.int_in("cpus", 1, 64, 2)
    memory = p.get("memory", _min_size(512 * 1024**2), 2 * 1024**3)
    disk = p.get("disk", _min_size(1024**3), 10 * 1024**3)
    node_class = p.get("node_class", _name, pool)
    datacenter = p.get("datacenter", _name, "dc1")
    node_pool = p.get("node_pool", _node_pool, "default")
    cloud_init = p.get("cloud_init", str, None)
    problems_before = len(p.problems)
    cloud_init_vars = p.get("cloud_init_vars", _yaml_map, {})
    vars_parsed = len(p.problems) == problems_before
    shadowed = sorted(set(cloud_init_vars) & BUILTIN_NAMES)
    if shadowed:
        p.problems.append(
            f"cloud_init_vars: {', '.join(shadowed)} are given by the reconciler and cannot be set"
        )
    template_text = cloud_init if cloud_init is not None else default_template_text()
    # The shipped template: the item is absent, or holds the very same text.
    if vars_parsed and template_text == default_template_text():
        p.problems.extend(_default_template_var_problems(cloud_init_vars))
    _check_compiles(template_text, p.problems)

    policy = None
    if "policy" in items:
        try:
            policy = parse_policy(str(items["policy"]))
        except PolicyError as exc:
            p.problems.extend(exc.problems)
        except RecursionError:  # PyYAML recurses per nesting level; the text is at fault
            p.problems.append("policy: is nested too deeply to read")
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
        drain_deadline=p.get(
            "drain_deadline",
            _duration_at_least(MIN_DRAIN_DEADLINE, "Nomad reads 0 as no deadline"),
            3600.0,
        ),
        drain_ignore_system_jobs=p.get("drain_ignore_system_jobs", parse_bool, False),
        node_purge=p.get("node_purge", parse_bool, True),
        scale_in=p.get("scale_in", _choice(SCALE_IN_STRATEGIES), "least_busy"),
        max_surge=p.get("max_surge", parse_count_or_percent, CountOrPercent(1)),
        max_unavailable=p.get("max_unavailable", parse_count_or_percent, CountOrPercent(0)),
        join_timeout=p.get(
            "join_timeout",
            _duration_at_least(
                MIN_JOIN_TIMEOUT,
                "a VM needs longer to boot and join; every new one would be replaced",
            ),
            600.0,
        ),
        unhealthy_timeout=p.get(
            "unhealthy_timeout",
            _duration_at_least(
                MIN_UNHEALTHY_TIMEOUT,
                "shorter would replace members over a missed heartbeat or a reboot",
            ),
            300.0,
        ),
        max_unhealthy=p.get("max_unhealthy", parse_count_or_percent, CountOrPercent(40, True)),
        paused=p.get("paused", parse_bool, False),
        policy=policy,
        hosts=p.get("hosts", _host_patterns, ("*",)),
        placement=p.get("placement", _choice(PLACEMENTS), "spread"),
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
    # (A template that does not compile is a problem already: nothing is rendered.)
    if not p.problems:
        # Render once for a sample instance: a missing variable is a spec problem
        # now, not a launch failure later.
        try:
            sample = with_servers(spec, SAMPLE_SERVERS) if needs_servers(spec) else spec
            render_cloud_init(sample, ownership.instance_name(pool, spec.template_hash, 0))
        except RenderError as exc:
            p.problems.append(str(exc).removeprefix(f"pool {pool}: "))
    if p.problems:
        raise SpecError(pool, p.problems)
    return spec
