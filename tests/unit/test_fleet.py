"""The fleet from host variables, and the observer reading every host of it.

Fake Nomad (variables only) and fake per-host clients: which hosts there are, which
credentials each gets, when a client is rebuilt, and how each host shows in
``Observed.hosts`` (capacity from daemon_info, unreachable with its error).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from reconciler.clock import ManualClock
from reconciler.errors import ConfigError
from reconciler.fleet import Fleet
from reconciler.hosts import HostUnavailable, host_path
from reconciler.model import Instance, InstanceState
from reconciler.multipass.client import DaemonInfo
from reconciler.multipass.errors import MultipassUnavailable
from reconciler.multipass.settings import MultipassSettings
from reconciler.nomad.errors import NotFound
from reconciler.nomad.models import QueryResult, Variable, VariableMeta
from reconciler.nomad.settings import NomadSettings
from reconciler.observe import Observer
from reconciler.pools import DEFAULT_PREFIX
from reconciler.settings import Settings
from reconciler.sim.certs import generate

GiB = 1024**3


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    certs = generate(Path(tmp_path_factory.mktemp("certs")), server_name="127.0.0.1")
    return {
        "root": certs.root_cert.read_text(),
        "cert": certs.client_cert.read_text(),
        "key": certs.client_key.read_text(),
    }


class Nomad:
    """Variables, nodes, allocations, evaluations: as much of Nomad as the observer reads."""

    def __init__(self) -> None:
        self.vars: dict[str, tuple[dict[str, str], int]] = {}
        self.index = 100
        self.var_reads: list[str] = []

    def put(self, path: str, items: dict[str, str]) -> None:
        self.index += 1
        self.vars[path] = (dict(items), self.index)

    def delete(self, path: str) -> None:
        self.index += 1
        del self.vars[path]

    async def list_vars(self, prefix: str = "", **_: Any) -> QueryResult[list[VariableMeta]]:
        metas = [
            VariableMeta(path=p, namespace="default", create_index=i, modify_index=i)
            for p, (_, i) in sorted(self.vars.items())
            if p.startswith(prefix)
        ]
        return QueryResult(metas, self.index)

    async def get_var(self, path: str) -> Variable:
        self.var_reads.append(path)
        if path not in self.vars:
            raise NotFound(f"no variable {path}")
        items, index = self.vars[path]
        return Variable(path, "default", items, index, index)

    async def list_nodes(self, **_: Any) -> QueryResult[list[Any]]:
        return QueryResult([], self.index)

    async def list_allocations(self, **_: Any) -> QueryResult[list[Any]]:
        return QueryResult([], self.index)

    async def list_evaluations(self, **_: Any) -> QueryResult[list[Any]]:
        return QueryResult([], self.index)


class Client:
    """One host's client. ``world`` holds what every daemon answers, by address."""

    def __init__(self, settings: MultipassSettings, world: World) -> None:
        self.settings = settings
        self.world = world
        self.closed = False
        self.refused_images: dict[str, str] = {}
        self.on_call: Any = None
        world.built.append(self)

    def _daemon(self) -> dict[str, Any]:
        daemon = self.world.daemons[self.settings.address]
        if daemon.get("down"):
            raise MultipassUnavailable(f"list: cannot reach multipassd at {self.settings.address}")
        return daemon

    async def connect(self) -> None:
        self._daemon()

    async def close(self, grace: float | None = None) -> None:
        self.closed = True

    async def list_instances(self) -> list[Instance]:
        daemon = self._daemon()
        if daemon.get("hang"):
            await asyncio.Event().wait()
        return [Instance(n, InstanceState.RUNNING) for n in daemon["instances"]]

    async def daemon_info(self) -> DaemonInfo:
        daemon = self._daemon()
        daemon["info_reads"] = daemon.get("info_reads", 0) + 1
        return DaemonInfo(*daemon["info"])

    async def version(self) -> str:
        return str(self._daemon().get("version", "1.16.0"))


class World:
    def __init__(self) -> None:
        self.daemons: dict[str, dict[str, Any]] = {}
        self.built: list[Client] = []

    def factory(self, settings: MultipassSettings) -> Client:
        return Client(settings, self)


def host_items(pem: dict[str, str], address: str, **extra: str) -> dict[str, str]:
    return {"address": address, "server_cert": pem["root"], **extra}


def make(pem: dict[str, str], env: dict[str, str] | None = None) -> tuple[Nomad, World, Fleet]:
    nomad, world = Nomad(), World()
    nomad.put(
        DEFAULT_PREFIX,
        {
            "client_cert": pem["cert"],
            "client_key": pem["key"],
            "passphrase": "shared-pass",
            "server_cert": pem["root"],
            "multipass_address": "10.0.0.1:50051",
        },
    )
    settings = Settings(DEFAULT_PREFIX, NomadSettings("http://127.0.0.1:4646"), env=env or {})
    fleet = Fleet(nomad, settings, client_factory=world.factory)  # type: ignore[arg-type]
    return nomad, world, fleet


def add_host(nomad: Nomad, world: World, pem: dict[str, str], host: str, address: str,
             instances: list[str] | None = None, **extra: str) -> None:  # fmt: skip
    world.daemons.setdefault(
        address, {"instances": instances or [], "info": (8, 32 * GiB, 500 * GiB)}
    )
    nomad.put(host_path(DEFAULT_PREFIX, host), host_items(pem, address, **extra))


async def test_no_host_variable_is_the_one_daemon_of_the_settings(pem: dict[str, str]) -> None:
    _, world, fleet = make(pem)
    world.daemons["10.0.0.1:50051"] = {"instances": ["web-bcdfg-0"], "info": (4, 8 * GiB, GiB)}
    await fleet.refresh()
    assert list(fleet.hosts()) == ["default"] and fleet.problems() == {}
    client = await fleet.connect("default")
    assert client.settings.address == "10.0.0.1:50051"
    assert client.settings.passphrase == "shared-pass"


async def test_no_host_variable_and_bad_settings_raise_as_before(pem: dict[str, str]) -> None:
    nomad, _, fleet = make(pem)
    nomad.delete(DEFAULT_PREFIX)
    with pytest.raises(ConfigError, match="no Multipass client certificate"):
        await fleet.refresh()


async def test_host_variables_are_exactly_the_hosts_with_the_shared_credentials(
    pem: dict[str, str],
) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051")
    add_host(nomad, world, pem, "host2", "10.0.0.12:50051", passphrase="own-pass")
    await fleet.refresh()
    assert list(fleet.hosts()) == ["host1", "host2"]  # the settings' daemon is not one
    one, two = await fleet.connect("host1"), await fleet.connect("host2")
    assert one.settings.address == "10.0.0.11:50051"
    assert one.settings.client_cert == pem["cert"].encode()  # shared, from <prefix>
    assert (one.settings.passphrase, two.settings.passphrase) == ("shared-pass", "own-pass")
    with pytest.raises(HostUnavailable, match="'default' is not in the fleet"):
        fleet.client("default")


async def test_shared_credentials_come_from_the_environment_when_given_there(
    pem: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "c.pem").write_text(pem["cert"])
    (tmp_path / "k.pem").write_text(pem["key"])
    env = {
        "MULTIPASS_CLIENT_CERT": str(tmp_path / "c.pem"),
        "MULTIPASS_CLIENT_KEY": str(tmp_path / "k.pem"),
        "MULTIPASS_PASSPHRASE": "env-pass",
    }
    nomad, world, fleet = make(pem, env)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051")
    await fleet.refresh()
    client = await fleet.connect("host1")
    assert client.settings.passphrase == "env-pass"
    assert DEFAULT_PREFIX not in nomad.var_reads  # not looked for in the variable


async def test_an_unchanged_variable_is_not_read_again_and_an_edit_applies(
    pem: dict[str, str],
) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051")
    add_host(nomad, world, pem, "host2", "10.0.0.12:50051")
    await fleet.refresh()
    first: Any = await fleet.connect("host1")
    second: Any = await fleet.connect("host2")
    reads = len(nomad.var_reads)
    await fleet.refresh()
    assert len(nomad.var_reads) == reads  # one list, no variable read
    # A switch edited: the same connection.
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051", cordoned="true")
    await fleet.refresh()
    assert nomad.var_reads[reads:] == [host_path(DEFAULT_PREFIX, "host1"), DEFAULT_PREFIX]
    assert not first.closed
    assert fleet.client("host1") is first
    first = cast(Client, first)
    spec = fleet.spec("host1")
    assert spec is not None and spec.cordoned
    # The address edited: that host's client is closed and rebuilt; the other's stays.
    world.daemons["10.0.0.21:50051"] = {"instances": [], "info": (1, GiB, GiB)}
    add_host(nomad, world, pem, "host1", "10.0.0.21:50051")
    await fleet.refresh()
    await asyncio.sleep(0)  # the retired client closes in the background
    assert first.closed
    rebuilt: Any = await fleet.connect("host1")
    assert rebuilt is not first and rebuilt.settings.address == "10.0.0.21:50051"
    assert not second.closed
    assert fleet.client("host2") is second
    second = cast(Client, second)
    # Removed: gone from the fleet, its client closed.
    nomad.delete(host_path(DEFAULT_PREFIX, "host2"))
    await fleet.refresh()
    await asyncio.sleep(0)
    assert list(fleet.hosts()) == ["host1"] and second.closed
    await fleet.close()
    assert rebuilt.closed


async def test_an_invalid_host_variable_affects_that_host_only(pem: dict[str, str]) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051")
    nomad.put(host_path(DEFAULT_PREFIX, "host2"), {"address": "nowhere", "cpus": "0"})
    await fleet.refresh()
    assert list(fleet.hosts()) == ["host1"]
    assert fleet.names() == ["host1", "host2"]
    problems = fleet.problems()["host2"]
    assert any(p.startswith("address:") for p in problems)
    assert any(p.startswith("cpus:") for p in problems)
    with pytest.raises(HostUnavailable, match="host host2: invalid host variable"):
        await fleet.connect("host2")
    assert (await fleet.connect("host1")).settings.address == "10.0.0.11:50051"


async def test_a_host_without_any_client_certificate_is_a_problem_of_its_own(
    pem: dict[str, str],
) -> None:
    nomad, world, fleet = make(pem)
    nomad.put(DEFAULT_PREFIX, {"passphrase": "p"})  # no shared certificate
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051")
    add_host(
        nomad,
        world,
        pem,
        "host2",
        "10.0.0.12:50051",
        client_cert=pem["cert"],
        client_key=pem["key"],
    )
    await fleet.refresh()
    assert "client_cert, client_key: not in this host's variable" in fleet.problems()["host1"][0]
    assert "host2" not in fleet.problems()


# ------------------------------------------------------------ the observer over the fleet


def observer(nomad: Nomad, fleet: Fleet, clock: ManualClock, **kw: Any) -> Observer:
    return Observer(nomad, fleet, clock, **kw)  # type: ignore[arg-type]


async def test_every_host_is_read_its_instances_tagged_and_its_capacity_computed(
    pem: dict[str, str],
) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051", ["web-bcdfg-host1-0"])
    add_host(
        nomad,
        world,
        pem,
        "host2",
        "10.0.0.12:50051",
        ["web-bcdfg-host2-0"],
        memory="16G",
        reserve_disk="100G",
        cpu_overcommit="1.5",
        max_parallel_launches="5",
        evacuate="true",
    )
    world.daemons["10.0.0.12:50051"]["version"] = "1.15.1"
    observed = await observer(nomad, fleet, ManualClock()).observe()
    assert {(i.name, i.host) for i in observed.instances} == {
        ("web-bcdfg-host1-0", "host1"),
        ("web-bcdfg-host2-0", "host2"),
    }
    one, two = observed.hosts["host1"], observed.hosts["host2"]
    assert one.reachable and one.error is None and one.version == "1.16.0"
    assert (one.cpus, one.memory, one.disk) == (32, 31 * GiB, 490 * GiB)
    assert (one.cordoned, one.evacuate, one.max_parallel_launches) == (False, False, 2)
    assert (two.cpus, two.memory, two.disk) == (12, 15 * GiB, 400 * GiB)
    assert (two.evacuate, two.max_parallel_launches, two.version) == (True, 5, "1.15.1")


async def test_a_host_edited_added_or_removed_shows_as_it_is_now_in_the_same_pass(
    pem: dict[str, str],
) -> None:
    # The hosts as last listed are read while the list is read again: what the list
    # changed must still be what the pass sees.
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051", ["web-bcdfg-host1-0"])
    add_host(nomad, world, pem, "host2", "10.0.0.12:50051", ["web-bcdfg-host2-0"])
    obs = observer(nomad, fleet, ManualClock())
    await obs.observe()
    add_host(nomad, world, pem, "host1", "10.0.0.21:50051", ["web-bcdfg-host1-1"])
    nomad.delete(host_path(DEFAULT_PREFIX, "host2"))
    add_host(nomad, world, pem, "host3", "10.0.0.13:50051", ["web-bcdfg-host3-0"])
    observed = await obs.observe()
    assert sorted((i.name, i.host) for i in observed.instances) == [
        ("web-bcdfg-host1-1", "host1"),  # through the new address, not the old one
        ("web-bcdfg-host3-0", "host3"),
    ]
    assert sorted(observed.hosts) == ["host1", "host3"]
    # An edit that keeps the connection (a switch): no new client, and the switch shows.
    reads = len(world.built)
    add_host(nomad, world, pem, "host3", "10.0.0.13:50051", cordoned="true")
    observed = await obs.observe()
    assert len(world.built) == reads and observed.hosts["host3"].cordoned


async def test_daemon_info_is_read_again_only_after_a_minute(pem: dict[str, str]) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051")
    clock = ManualClock()
    obs = observer(nomad, fleet, clock)
    await obs.observe()
    reads = obs.reads
    await obs.observe()
    # A steady pass: the hosts list, one instance list, the node and allocation lists;
    # no daemon_info (and no blocked evaluations: the controller reads them for policies).
    assert obs.reads - reads == 1 + 1 + 2
    assert world.daemons["10.0.0.11:50051"]["info_reads"] == 1
    world.daemons["10.0.0.11:50051"]["info"] = (16, 64 * GiB, 500 * GiB)  # resized
    clock.advance(59)
    assert (await obs.observe()).hosts["host1"].cpus == 32
    clock.advance(2)
    assert (await obs.observe()).hosts["host1"].cpus == 64
    assert world.daemons["10.0.0.11:50051"]["info_reads"] == 2


async def test_a_host_that_cannot_be_read_is_unreachable_never_empty(pem: dict[str, str]) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051", ["web-bcdfg-host1-0"])
    add_host(nomad, world, pem, "host2", "10.0.0.12:50051", ["web-bcdfg-host2-0"])
    obs = observer(nomad, fleet, ManualClock())
    await obs.observe()
    world.daemons["10.0.0.12:50051"]["down"] = True
    observed = await obs.observe()
    assert [i.name for i in observed.instances] == ["web-bcdfg-host1-0"]
    two = observed.hosts["host2"]
    assert not two.reachable and "cannot reach multipassd at 10.0.0.12" in (two.error or "")
    assert two.cpus == 32  # the last figures known, for display
    assert observed.hosts["host1"].reachable
    world.daemons["10.0.0.12:50051"]["down"] = False
    back = await obs.observe()
    assert back.hosts["host2"].reachable and len(back.instances) == 2


async def test_a_host_that_hangs_is_unreachable_within_its_deadline(pem: dict[str, str]) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051", ["a-bcdfg-host1-0"])
    add_host(nomad, world, pem, "host2", "10.0.0.12:50051", ["a-bcdfg-host2-0"])
    world.daemons["10.0.0.12:50051"]["hang"] = True
    observed = await observer(nomad, fleet, ManualClock(), host_timeout=0.2).observe()
    assert not observed.hosts["host2"].reachable
    assert "did not answer within 0.2s" in (observed.hosts["host2"].error or "")
    assert [i.host for i in observed.instances] == ["host1"]


async def test_an_invalid_host_is_unreachable_with_its_problems(pem: dict[str, str]) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051", ["a-bcdfg-host1-0"])
    nomad.put(host_path(DEFAULT_PREFIX, "host2"), {"address": "10.0.0.12:50051", "foo": "1"})
    observed = await observer(nomad, fleet, ManualClock()).observe()
    two = observed.hosts["host2"]
    assert not two.reachable and "foo: unknown item" in (two.error or "")
    assert "server_cert: required" in (two.error or "")
    assert observed.hosts["host1"].reachable


async def test_when_no_host_can_be_read_the_pass_fails(pem: dict[str, str]) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051")
    add_host(nomad, world, pem, "host2", "10.0.0.12:50051")
    for daemon in world.daemons.values():
        daemon["down"] = True
    with pytest.raises(Exception, match=r"no Multipass host could be read: host1: .*; host2: "):
        await observer(nomad, fleet, ManualClock()).observe()


async def test_the_one_daemon_failing_fails_the_pass_with_its_own_error(
    pem: dict[str, str],
) -> None:
    nomad, world, fleet = make(pem)
    world.daemons["10.0.0.1:50051"] = {"instances": [], "info": (1, GiB, GiB), "down": True}
    with pytest.raises(MultipassUnavailable, match=r"cannot reach multipassd at 10\.0\.0\.1:50051"):
        await observer(nomad, fleet, ManualClock()).observe()


async def test_a_host_that_could_not_connect_is_tried_again(pem: dict[str, str]) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051")
    add_host(nomad, world, pem, "host2", "10.0.0.12:50051")
    world.daemons["10.0.0.12:50051"]["down"] = True
    obs = observer(nomad, fleet, ManualClock())
    assert not (await obs.observe()).hosts["host2"].reachable
    with pytest.raises(HostUnavailable, match="host host2: not connected to its multipassd"):
        fleet.client("host2")
    world.daemons["10.0.0.12:50051"]["down"] = False
    assert (await obs.observe()).hosts["host2"].reachable
    assert fleet.client("host2").settings.address == "10.0.0.12:50051"


async def test_broken_since_is_kept_per_host_and_name(pem: dict[str, str]) -> None:
    nomad, world, fleet = make(pem)
    add_host(nomad, world, pem, "host1", "10.0.0.11:50051")
    add_host(nomad, world, pem, "host2", "10.0.0.12:50051")
    clock = ManualClock()
    obs = observer(nomad, fleet, clock)
    await fleet.refresh()
    one, two = await fleet.connect("host1"), await fleet.connect("host2")
    states = {"host1": InstanceState.STOPPED, "host2": InstanceState.RUNNING}

    def listing(host: str) -> Any:
        async def list_instances() -> list[Instance]:
            return [Instance("x-bcdfg-0", states[host])]  # one name on both: not ours

        return list_instances

    one.list_instances = listing("host1")  # type: ignore[method-assign]
    two.list_instances = listing("host2")  # type: ignore[method-assign]
    first = await obs.observe()
    clock.advance(30)
    states["host2"] = InstanceState.STOPPED
    again = await obs.observe()
    since = {i.host: i.broken_since for i in again.instances}
    assert since == {"host1": first.at, "host2": again.at}
