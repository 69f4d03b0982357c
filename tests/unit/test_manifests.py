"""manifests/: the job, its ACL policy and the example pools parse and say what matters."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest

from reconciler import client_certs, ownership
from reconciler.app import connect
from reconciler.clock import ManualClock
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.execute import ExecutorLimits
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import LockHeld, NotFound, PermissionDenied
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
    """An HCL2 string as Nomad reads a job file (python-hcl2 keeps quotes and heredoc markers).

    Variable files are HCL1 to `nomad var put`: see var_file_items.
    """
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


def job_task() -> dict[str, Any]:
    job = block(load("multipass-reconciler.nomad.hcl")["job"])
    body = block(next(iter(job.values())))
    group = block(next(iter(block(body["group"]).values())))
    return block(next(iter(block(group["task"]).values())))


def templates() -> list[dict[str, Any]]:
    return [block(t) for t in job_task()["template"]]


def image_user() -> tuple[int, int]:
    """The numeric uid:gid the image runs as (its USER line)."""
    users = re.findall(r"^USER\s+(\S+)\s*$", (MANIFESTS / "Containerfile").read_text(), re.M)
    assert users, "manifests/Containerfile has no USER line: the task would run as root"
    uid, sep, gid = users[-1].partition(":")
    assert sep and uid.isdigit() and gid.isdigit(), f"USER {users[-1]}: expected numeric uid:gid"
    return int(uid), int(gid)


def test_every_secret_file_belongs_to_the_user_the_image_runs_as() -> None:
    """Nomad writes templates as the agent's user unless told: a 0600 file the task can't read."""
    uid, gid = image_user()
    secret_files = [
        t for t in templates() if text(t["destination"]).startswith("${NOMAD_SECRETS_DIR}")
    ]
    assert len(secret_files) == 4
    for t in secret_files:
        where = text(t["destination"])
        assert text(t.get("perms", "0644")) == "0600", f"{where}: perms must be 0600"
        assert (t.get("uid"), t.get("gid")) == (uid, gid), f"{where}: uid/gid must be {uid}:{gid}"


# --- Rendering the job's templates as Nomad would, for the subset of Go's text/template
# and consul-template the job uses. Faithful where it matters: a missing map key yields
# the item type's zero value (a struct, which `if`/`with` count as true), `toJSON` is
# json.Marshal (HTML-escaping <, > and &), and the env file is read by go-envparse rules.


@dataclass(frozen=True)
class VarItem:
    """consul-template's NomadVarItem: prints as its Value; a struct, so always true."""

    Key: str = ""
    Value: str = ""

    def __str__(self) -> str:
        return self.Value


def go_truth(value: Any) -> bool:
    if isinstance(value, VarItem):
        return True  # text/template: any struct is true
    return bool(value)


def go_to_json(value: Any) -> str:
    assert isinstance(value, str), (
        f"toJSON of {value!r}: NomadVarItem marshals with Go %q, not JSON"
    )
    out = json.dumps(value, ensure_ascii=False)
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_term(word: str, dot: Any, funcs: Mapping[str, Callable[..., Any]]) -> Any:
    if word.startswith('"'):
        return json.loads(word)
    if word == ".":
        return dot
    if word.startswith("."):
        value = dot
        for name in word[1:].split("."):
            # A map's missing key gives the zero value; anything else is a struct field.
            value = value.get(name, VarItem()) if isinstance(value, dict) else getattr(value, name)
        return value
    return funcs[word]


def go_pipeline(expr: str, dot: Any, funcs: Mapping[str, Callable[..., Any]]) -> Any:
    result: Any = None
    for i, command in enumerate(expr.split("|")):
        words = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', command)
        head = go_term(words[0], dot, funcs)
        args = [go_term(w, dot, funcs) for w in words[1:]] + ([result] if i else [])
        result = head(*args) if callable(head) else head
    return result


def render_go_template(src: str, variable: dict[str, str] | None, env: Mapping[str, str]) -> str:
    items = None if variable is None else {k: VarItem(k, v) for k, v in variable.items()}
    funcs: dict[str, Callable[..., Any]] = {
        "nomadVar": lambda path: items if path == DEFAULT_PREFIX else None,
        "env": lambda name: env.get(name, ""),
        "toJSON": go_to_json,
        "and": lambda *a: next((x for x in a if not go_truth(x)), a[-1]),
    }
    parts = re.split(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", src, flags=re.S)
    nodes: list[tuple[str, str]] = []
    trim_next = False
    for i in range(0, len(parts), 4):
        chunk = parts[i].lstrip() if trim_next else parts[i]
        if i + 1 < len(parts):
            if parts[i + 1]:
                chunk = chunk.rstrip()
            trim_next = bool(parts[i + 3])
        nodes.append(("text", chunk))
        if i + 1 < len(parts):
            nodes.append(("action", parts[i + 2]))
    out: list[str] = []
    # A stack of (dot, emitting) for the with/if blocks.
    stack: list[tuple[Any, bool]] = [(None, True)]
    for kind, value in nodes:
        dot, emitting = stack[-1]
        if kind == "text":
            if emitting:
                out.append(value)
        elif value == "end":
            stack.pop()
        elif value.startswith(("with ", "if ")):
            keyword, _, expr = value.partition(" ")
            result = go_pipeline(expr, dot, funcs) if emitting else None
            taken = emitting and go_truth(result)
            stack.append((result if keyword == "with" else dot, taken))
        elif emitting:
            out.append(str(go_pipeline(value, dot, funcs)))
    assert len(stack) == 1, "unbalanced {{ end }}"
    return "".join(out)


def parse_env_file(rendered: str) -> dict[str, str]:
    """go-envparse, as Nomad reads an `env = true` template (for what the job writes)."""
    env = {}
    for line in rendered.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"env file line {line!r}: no '='"
        value = value.strip()
        if value.startswith('"'):
            env[key.strip()] = json.loads(value)  # JSON escapes are go-envparse's
        else:
            assert not set(value) & set("\"'#"), (
                f"{key}: unquoted {value!r} would be cut at # or taken as quotes"
            )
            env[key.strip()] = value
    return env


CERT = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n"
PIN = "-----BEGIN CERTIFICATE-----\nMIIBpin\n-----END CERTIFICATE-----\n"
# Everything a .env file treats specially, and what JSON escapes.
TRICKY = " pa\"ss\\wo#rd 'ä<&> "


def render_job_secrets(variable: dict[str, str], secrets_dir: Path) -> dict[str, str]:
    """The job's templates rendered into secrets_dir; the task's environment from them."""
    env: dict[str, str] = {}
    nomad_env = {"NOMAD_SECRETS_DIR": str(secrets_dir)}
    for t in templates():
        rendered = render_go_template(text(t["data"]), variable, nomad_env)
        name = text(t["destination"]).removeprefix("${NOMAD_SECRETS_DIR}/")
        (secrets_dir / name).write_text(rendered)
        if t.get("env"):
            env.update(parse_env_file(rendered))
    return env


class FakeVariableReader:
    """A Nomad client that has only the reconciler's variable (settings' fallback path)."""

    def __init__(self, items: dict[str, str]) -> None:
        self.items = items

    async def get_var(self, path: str) -> Any:
        assert path == DEFAULT_PREFIX
        return type("Var", (), {"items": self.items})()


async def settings_in_the_task(variable: dict[str, str], tmp_path: Path) -> Any:
    env = render_job_secrets(variable, tmp_path)
    settings = Settings(DEFAULT_PREFIX, NomadSettings("http://127.0.0.1:4646"), env=env)
    return env, await settings.resolve_multipass(FakeVariableReader(variable))  # type: ignore[arg-type]


FULL = {
    "client_cert": CERT,
    "client_key": KEY_PEM,
    "server_cert": PIN,
    "multipass_address": "192.168.1.10:50051",
    "passphrase": TRICKY,
}


async def test_the_job_hands_every_item_to_the_task_unchanged(tmp_path: Path) -> None:
    env, mp = await settings_in_the_task(FULL, tmp_path)
    assert env["MULTIPASS_PASSPHRASE"] == TRICKY and mp.passphrase == TRICKY
    assert mp.address == "192.168.1.10:50051"
    assert (mp.client_cert, mp.client_key, mp.server_cert) == (
        CERT.encode(),
        KEY_PEM.encode(),
        PIN.encode(),
    )


async def test_without_server_cert_the_task_is_told_the_daemon_is_not_pinned(
    tmp_path: Path,
) -> None:
    """Not "not a PEM file" about an empty file the template wrote."""
    variable = {k: v for k, v in FULL.items() if k not in ("server_cert", "passphrase")}
    env = render_job_secrets(variable, tmp_path)
    assert "MULTIPASS_SERVER_CERT" not in env and "MULTIPASS_PASSPHRASE" not in env
    with pytest.raises(ConfigError, match="certificate is not pinned"):
        await settings_in_the_task(variable, tmp_path)


async def test_without_an_address_the_job_sets_none(tmp_path: Path) -> None:
    """No empty MULTIPASS_SERVER_ADDRESS; docs/operations.md names the socket error it gives."""
    variable = {k: v for k, v in FULL.items() if k != "multipass_address"}
    assert "MULTIPASS_SERVER_ADDRESS" not in render_job_secrets(variable, tmp_path)


async def test_without_the_client_key_the_missing_item_is_named(tmp_path: Path) -> None:
    variable = {k: v for k, v in FULL.items() if k != "client_key"}
    env = render_job_secrets(variable, tmp_path)
    assert "MULTIPASS_CLIENT_CERT" not in env and "MULTIPASS_CLIENT_KEY" not in env
    with pytest.raises(ConfigError, match="missing item\\(s\\) client_key"):
        await settings_in_the_task(variable, tmp_path)


def capabilities(policy: dict[str, Any]) -> dict[str, list[str]]:
    ns = block(next(iter(block(policy["namespace"]).values())))
    paths = block(block(ns["variables"])["path"])
    return {text(p): [text(c) for c in block(v)["capabilities"]] for p, v in paths.items()}


JOB_POLICY = "multipass-reconciler.policy.hcl"
OPERATOR_POLICY = "multipass-reconciler-operator.policy.hcl"


def test_the_policy_grants_exactly_what_the_reconciler_needs() -> None:
    policy = load(JOB_POLICY)
    prefix = "nomad/jobs/multipass-reconciler"
    assert capabilities(policy) == {
        prefix: ["read"],  # secrets: never written
        f"{prefix}/pools/*": ["read", "list"],  # specs are people's to write
        f"{prefix}/hosts/*": ["read", "list"],  # so are the fleet's hosts
        # Listed and destroyed: the status is the finalizer of a deleted pool.
        f"{prefix}/status/*": ["read", "write", "list", "destroy"],
        f"{prefix}/leader": ["write"],  # lock operations; reading it is `apply`'s
    }
    assert text(block(policy["node"])["policy"]) == "write"  # drain, eligibility, purge


def as_enforced(policy: dict[str, Any]) -> Policy:
    """The policy file as the Nomad simulator enforces it (same globs, same capabilities)."""
    ns = block(next(iter(block(policy["namespace"]).values())))
    return Policy(
        variables={path: set(caps) for path, caps in capabilities(policy).items()},
        node=text(block(policy["node"])["policy"]),
        read_job="read-job" in [text(c) for c in ns.get("capabilities", [])],
    )


def grants(policy: Policy) -> list[str]:
    """Each grant of a policy, named as `without` takes it away."""
    named = [f"{path} {cap}" for path, caps in policy.variables.items() for cap in sorted(caps)]
    return named + (["read-job"] if policy.read_job else []) + [f"node {policy.node}"]


def without(policy: Policy, grant: str) -> Policy:
    if grant == "read-job":
        return dataclasses.replace(policy, read_job=False)
    if grant.startswith("node "):
        return dataclasses.replace(policy, node={"write": "read", "read": "deny"}[policy.node])
    path, cap = grant.rsplit(" ", 1)
    variables = {p: set(c) - ({cap} if p == path else set()) for p, c in policy.variables.items()}
    return dataclasses.replace(policy, variables=variables)


async def run_a_pool_s_whole_life(policy: Policy) -> None:
    """What `reconciler run` does, with a token carrying only ``policy``.

    It reads the credentials from the job's variable and its one host from the fleet's
    host variables, grows a pool, shrinks it (drain, delete, purge), writes status, stands by while another replica holds the leader lock
    and then takes, renews and releases it; it cannot write specs.
    """
    config = SimConfig(seed=5, acl=True, boot_seconds=20, heartbeat_timeout=15, migrate_seconds=10)
    clock = ManualClock()
    lock = leader_path(DEFAULT_PREFIX)
    async with Simulation(config, clock) as sim:
        token = sim.nomad_state.add_token(policy)
        admin = NomadSettings(
            address=sim.nomad.address, token=sim.nomad_state.add_token(MANAGEMENT)
        )
        async with NomadClient(admin) as people:
            await people.put_var(DEFAULT_PREFIX, imported_secrets(sim))
            await people.put_var(pool_path(DEFAULT_PREFIX, "web"), pool(2))
            # The daemon as a host of the fleet: its members' names say so.
            await people.put_var(
                f"{DEFAULT_PREFIX}/hosts/box1",
                {
                    "address": sim.multipassd.address,
                    "server_cert": sim.certs.server_cert.read_text(),
                },
            )
            # env={}: no MULTIPASS_* variables, so the credentials come from the variable.
            settings = Settings(DEFAULT_PREFIX, NomadSettings(sim.nomad.address, token), env={})
            limits = ExecutorLimits(call_timeout=5.0, attempts=2, backoff_max=0.05)
            async with connect(settings, clock=clock, limits=limits) as c:
                h = Harness(sim, c)
                assert len((await h.converge(max_passes=20)).plans) == 1
                assert len(h.ready_nodes()) == 2
                assert all("-box1-" in n for n in h.instances()), h.instances()
                await people.put_var(pool_path(DEFAULT_PREFIX, "web"), pool(1))
                await h.converge(max_passes=20)
                assert len(h.instances()) == 1 and len(sim.nomad_state.nodes) == 1  # purged
                assert await items_or_none(people, status_path(DEFAULT_PREFIX, "web")), (
                    "the reconciler wrote no status for pool web"
                )
                # The standby's view: held elsewhere is LockHeld, not PermissionDenied.
                _, theirs = await people.lock_acquire(lock, ttl=15, items={"holder": "other"})
                with pytest.raises(LockHeld):
                    await c.nomad.lock_acquire(lock, ttl=15, items={"holder": "t"})
                await people.lock_release(lock, theirs)
                _, ours = await c.nomad.lock_acquire(lock, ttl=15, items={"holder": "t"})
                await c.nomad.lock_renew(lock, ours)
                await c.nomad.lock_release(lock, ours)
                with pytest.raises(PermissionDenied):
                    await c.nomad.put_var(pool_path(DEFAULT_PREFIX, "web"), pool(3))
                # Deleted by a person: scaled to zero, then its status (the finalizer) goes.
                await people.delete_var(pool_path(DEFAULT_PREFIX, "web"))
                await h.converge(max_passes=20)
                await h.c.controller.reconcile_once()
                assert h.instances() == [] and not sim.nomad_state.nodes
                assert await items_or_none(people, status_path(DEFAULT_PREFIX, "web")) is None, (
                    "the deleted pool's status was not removed"
                )


async def items_or_none(nomad: NomadClient, path: str) -> dict[str, str] | None:
    try:
        return dict((await nomad.get_var(path)).items)
    except NotFound:
        return None


async def test_the_policy_is_enough_for_a_pool_s_whole_life() -> None:
    """The other half of least privilege: with only this policy the reconciler still works."""
    await run_a_pool_s_whole_life(as_enforced(load(JOB_POLICY)))


@pytest.mark.parametrize("grant", grants(as_enforced(load(JOB_POLICY))))
async def test_every_grant_of_the_policy_is_needed(grant: str) -> None:
    """Least privilege: take any one grant away and the reconciler's work fails."""
    reduced = without(as_enforced(load(JOB_POLICY)), grant)
    with pytest.raises((AssertionError, ReconcilerError)):
        await run_a_pool_s_whole_life(reduced)


async def test_the_operator_policy_covers_the_cli_and_the_job_s_does_not() -> None:
    """`apply` reads the leader lock and people write specs: the job's token may not."""
    operator, job = as_enforced(load(OPERATOR_POLICY)), as_enforced(load(JOB_POLICY))
    assert set(grants(job)) <= set(grants(operator))  # `apply` acts as the job does
    config = SimConfig(seed=5, acl=True)
    async with Simulation(config, ManualClock()) as sim:
        admin = NomadSettings(sim.nomad.address, sim.nomad_state.add_token(MANAGEMENT))
        async with NomadClient(admin) as people:
            await people.put_var(status_path(DEFAULT_PREFIX, "web"), {"desired": "1"})
            await people.lock_acquire(leader_path(DEFAULT_PREFIX), ttl=15, items={"holder": "r"})
        for policy, allowed in ((operator, True), (job, False)):
            settings = NomadSettings(sim.nomad.address, sim.nomad_state.add_token(policy))
            async with NomadClient(settings) as nomad:
                listed = await nomad.list_vars(f"{DEFAULT_PREFIX}/status/")
                assert [m.path for m in listed.value] == [status_path(DEFAULT_PREFIX, "web")]
                if allowed:
                    await nomad.get_var(leader_path(DEFAULT_PREFIX))
                    await nomad.put_var(pool_path(DEFAULT_PREFIX, "web"), pool(1))
                else:
                    with pytest.raises(PermissionDenied):
                        await nomad.get_var(leader_path(DEFAULT_PREFIX))


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


# `nomad var put -in hcl` parses with HCL1, not HCL2. Its `<<-` heredoc strips the
# closing marker's indentation from every line, and only if every line has it (a less
# indented or blank line leaves the whole text as written); HCL2 strips the common
# indentation of the content instead. The examples are written so both agree.
HEREDOC = re.compile(
    r"^[ \t]*(\w+)[ \t]*=[ \t]*<<(-?)([A-Za-z_]\w*)\n(.*?)^([ \t]*)\3[ \t]*$", re.M | re.S
)


def hcl1_heredocs(source: str) -> dict[str, str]:
    """Each `key = <<EOT ... EOT` value of an HCL file as HCL1 (nomad var put) reads it."""
    values = {}
    for m in HEREDOC.finditer(source):
        key, dash, _, body, prefix = m.groups()
        lines = body.split("\n")[:-1]  # body ends with the last content line's newline
        if dash and all(line.startswith(prefix) for line in [*lines, prefix]):
            body = "".join(line[len(prefix) :] + "\n" for line in lines)
        values[key] = body
    return values


def var_file_items(source: str) -> dict[str, str]:
    """The items of a `nomad var put -in hcl` file, heredocs as HCL1 reads them."""
    parsed = clean(hcl2.loads(source))
    items = {k: text(v) for k, v in block(parsed["items"]).items()}
    heredocs = hcl1_heredocs(source)
    hcl2_heredocs = {k for k, v in block(parsed["items"]).items() if "<<" in str(v)[:4]}
    assert set(heredocs) == hcl2_heredocs, "a heredoc the HCL1 reading missed"
    return {**items, **heredocs}


def example_items(name: str) -> dict[str, str]:
    return var_file_items((MANIFESTS / "pools" / name).read_text())


EXAMPLES = sorted(p.name for p in (MANIFESTS / "pools").glob("*.nv.hcl"))


def migration_guide_pool() -> str:
    """docs/migrating.md's "after" example: what people copy into `nomad var put`."""
    doc = (MANIFESTS.parent / "docs/migrating.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```hcl\n")[1:]]
    return next(b for b in blocks if b.startswith("path = "))


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_pool_is_a_valid_spec(name: str) -> None:
    doc = load(f"pools/{name}")
    path = text(doc["path"])
    assert path.startswith("nomad/jobs/multipass-reconciler/pools/")
    spec = parse_pool_spec(path.rsplit("/", 1)[1], example_items(name), index=1)
    if name == "autoscaled.nv.hcl":
        assert spec.policy is not None and len(spec.policy.checks) == 3


@pytest.mark.parametrize("name", [*EXAMPLES, "docs/migrating.md"])
def test_hcl1_and_hcl2_read_every_heredoc_alike(name: str) -> None:
    """Nomad reads these with HCL1, our tests and editors with HCL2: one text for both."""
    if name.endswith(".md"):
        source = migration_guide_pool()
    else:
        source = (MANIFESTS / "pools" / name).read_text()
    parsed = block(clean(hcl2.loads(source))["items"])
    for key, value in hcl1_heredocs(source).items():
        assert value == text(parsed[key]), f"{name}: {key} reads differently under HCL1"


def test_hcl1_heredocs_are_read_as_nomad_var_put_reads_them() -> None:
    """The rule itself: the closing marker's indentation, all lines or none."""
    src = "a = <<-EOT\n    x\n      y\n  EOT\nb = <<-EOT\n  x\n\n  y\n  EOT\nc = <<EOT\n  x\nEOT\n"
    assert hcl1_heredocs(src) == {"a": "  x\n    y\n", "b": "  x\n\n  y\n", "c": "  x\n"}


def test_the_migration_guide_s_pool_is_a_valid_spec() -> None:
    """docs/migrating.md's "after" example is what people copy: it must stay valid."""
    source = migration_guide_pool()
    items = var_file_items(source)
    path = text(clean(hcl2.loads(source))["path"])
    spec = parse_pool_spec(path.rsplit("/", 1)[1], items, index=1)
    assert spec.node_class == "hashistack" and spec.policy is not None


def test_the_custom_cloud_init_makes_a_nomad_client_of_the_pool() -> None:
    spec = parse_pool_spec("builders", example_items("custom-cloud-init.nv.hcl"), index=1)
    name = ownership.instance_name("builders", spec.template_hash, 0)
    node = interpret(render_cloud_init(spec, name), hostname=name)
    assert node.name == name and node.node_class == "builder"
    assert node.meta[ownership.META_POOL] == "builders"
