"""The executor routes each action to its host's daemon and bounds launches per host."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.errors import TemporaryError
from reconciler.execute import Executor, ExecutorLimits, OneHost
from reconciler.hosts import HostUnavailable
from reconciler.plan import Action, ActionKind
from reconciler.spec import parse_pool_spec

SPEC = parse_pool_spec("web", {"min": "0", "max": "9", "cloud_init_vars": "servers: [10.0.0.1]"})


class Daemon:
    """One host's client: records calls; a launch waits while its name is held."""

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.deleted: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.gates: dict[str, asyncio.Event] = {}

    async def launch(self, name: str, **_: object) -> None:
        self.launched.append(name)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if name in self.gates:
                await self.gates[name].wait()
        finally:
            self.running -= 1

    async def delete(self, names: list[str], **_: object) -> None:
        self.deleted += names


class Hosts:
    """Instances by host, as the Fleet gives them."""

    def __init__(self, daemons: dict[str, Daemon], limits: dict[str, int | None]) -> None:
        self.daemons = daemons
        self.limits = limits

    def client(self, host: str) -> Daemon:
        if host not in self.daemons:
            raise HostUnavailable(host, f"host {host!r} is not in the fleet")
        return self.daemons[host]

    def launch_limit(self, host: str) -> int | None:
        return self.limits.get(host, 2)


class Nodes:
    def __init__(self) -> None:
        self.drained: list[str] = []
        self.purged: list[str] = []

    async def drain_node(self, node_id: str, **_: object) -> None:
        self.drained.append(node_id)

    async def purge_node(self, node_id: str) -> None:
        self.purged.append(node_id)


def launch(name: str, host: str) -> Action:
    return Action(ActionKind.LAUNCH, name, "below min", host=host)


def executor(hosts: Hosts, nodes: Nodes | None = None, **limits: float) -> Executor:
    return Executor(
        hosts,
        nodes or Nodes(),
        lambda spec, name: "#cloud-config\n",
        ExecutorLimits(backoff_max=0.01, attempts=2, **limits),  # type: ignore[arg-type]
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_launches_and_deletes_go_to_the_daemon_their_action_names() -> None:
    one, two = Daemon(), Daemon()
    nodes = Nodes()
    ex = executor(Hosts({"host1": one, "host2": two}, {}), nodes)
    results = await ex.execute(
        SPEC,
        [
            launch("web-abc-host1-0", "host1"),
            launch("web-abc-host2-0", "host2"),
            Action(ActionKind.DELETE, "web-abc-host2-1", "drained", node_id="n1", host="host2"),
            Action(ActionKind.DRAIN, "web-abc-host1-1", "scale in", node_id="n2", host="host1"),
            Action(ActionKind.PURGE_NODE, "web-abc-host1-2", "gone", node_id="n3", host="host1"),
        ],
    )
    assert all(r.ok for r in results), results
    assert (one.launched, one.deleted) == (["web-abc-host1-0"], [])
    assert (two.launched, two.deleted) == (["web-abc-host2-0"], ["web-abc-host2-1"])
    assert (nodes.drained, nodes.purged) == (["n2"], ["n3"])  # Nomad's, whatever the host


async def test_an_action_for_a_host_not_in_the_fleet_fails_at_once_as_temporary() -> None:
    one = Daemon()
    ex = executor(Hosts({"host1": one}, {}))
    [result] = await ex.execute(SPEC, [launch("web-abc-host9-0", "host9")])
    assert not result.ok and result.temporary and not result.abandoned
    assert result.error is not None and "host9" in result.error
    [gone] = await ex.execute(
        SPEC, [Action(ActionKind.DELETE, "web-abc-host9-1", "x", host="host9")]
    )
    assert not gone.ok and gone.temporary and "host9" in (gone.error or "")
    assert one.launched == [] and one.deleted == []
    assert not ex.inflight


async def test_a_third_launch_on_a_host_waits_while_another_host_s_goes() -> None:
    one, two = Daemon(), Daemon()
    for name in ("a0", "a1", "a2"):
        one.gates[name] = asyncio.Event()
    two.gates["b0"] = asyncio.Event()
    ex = executor(Hosts({"host1": one, "host2": two}, {"host1": 2, "host2": 2}))
    tasks = [
        asyncio.create_task(ex.run_action(SPEC, launch(n, "host1"))) for n in ("a0", "a1", "a2")
    ]
    await settle()
    assert one.launched == ["a0", "a1"]  # host1's limit is 2: a2 waits
    other = asyncio.create_task(ex.run_action(SPEC, launch("b0", "host2")))
    await settle()
    # The waiting launch holds none of the shared launch slots (3): host2's goes at once.
    assert two.launched == ["b0"]
    assert one.launched == ["a0", "a1"]
    one.gates["a0"].set()
    await settle()
    assert one.launched == ["a0", "a1", "a2"]  # a slot on host1 came free
    for gate in [*one.gates.values(), *two.gates.values()]:
        gate.set()
    results = await asyncio.gather(*tasks, other)
    assert all(r.ok for r in results)
    assert one.most_at_once == 2 and two.most_at_once == 1


async def test_hosts_with_a_bound_of_their_own_are_not_held_to_the_shared_one() -> None:
    # 0 -> N over H hosts takes ceil(N / (H x bound)) launch times, not N / launch_concurrency.
    daemons = {f"host{i}": Daemon() for i in range(1, 4)}
    for host, d in daemons.items():
        d.gates.update({f"{host}-a": asyncio.Event(), f"{host}-b": asyncio.Event()})
    ex = executor(Hosts(daemons, {}), launch_concurrency=2)
    tasks = [
        asyncio.create_task(ex.run_action(SPEC, launch(f"{host}-{n}", host)))
        for host in daemons
        for n in ("a", "b")
    ]
    await settle()
    assert sum(len(d.launched) for d in daemons.values()) == 6  # 3 hosts x 2 each
    for d in daemons.values():
        for gate in d.gates.values():
            gate.set()
    assert all(r.ok for r in await asyncio.gather(*tasks))


async def test_a_lone_client_without_a_bound_takes_the_shared_launch_slots() -> None:
    daemon = Daemon()
    for n in ("a", "b", "c"):
        daemon.gates[n] = asyncio.Event()
    ex = executor(Hosts({"default": daemon}, {"default": None}), launch_concurrency=2)
    tasks = [asyncio.create_task(ex.run_action(SPEC, launch(n, "default"))) for n in "abc"]
    await settle()
    assert len(daemon.launched) == 2
    for gate in daemon.gates.values():
        gate.set()
    assert all(r.ok for r in await asyncio.gather(*tasks))


async def test_a_raised_host_limit_applies_to_the_next_launch() -> None:
    one = Daemon()
    for name in ("a0", "a1", "a2"):
        one.gates[name] = asyncio.Event()
    hosts = Hosts({"host1": one}, {"host1": 1})
    ex = executor(hosts)
    first = asyncio.create_task(ex.run_action(SPEC, launch("a0", "host1")))
    await settle()
    second = asyncio.create_task(ex.run_action(SPEC, launch("a1", "host1")))
    await settle()
    assert one.launched == ["a0"]
    hosts.limits["host1"] = 3  # the host variable was edited
    third = asyncio.create_task(ex.run_action(SPEC, launch("a2", "host1")))
    await settle()
    # The waiter looks again at the next release; a new launch sees the new limit now.
    assert "a2" in one.launched
    for gate in one.gates.values():
        gate.set()
    assert all(r.ok for r in await asyncio.gather(first, second, third))


async def test_a_launch_waiting_for_its_host_is_abandoned_on_stop() -> None:
    one = Daemon()
    one.gates["a0"] = asyncio.Event()
    ex = executor(Hosts({"host1": one}, {"host1": 1}))
    first = asyncio.create_task(ex.run_action(SPEC, launch("a0", "host1")))
    await settle()
    waiting = asyncio.create_task(ex.run_action(SPEC, launch("a1", "host1")))
    await settle()
    ex.stop()
    result = await waiting
    assert result.abandoned and one.launched == ["a0"]
    one.gates["a0"].set()
    assert (await first).ok


async def test_one_client_alone_is_the_host_default() -> None:
    one = Daemon()
    ex = Executor(one, Nodes(), lambda spec, name: "", ExecutorLimits())  # type: ignore[arg-type]
    [ok] = await ex.execute(SPEC, [Action(ActionKind.LAUNCH, "web-abc-0", "x")])
    [elsewhere] = await ex.execute(SPEC, [launch("web-abc-host2-0", "host2")])
    assert ok.ok and one.launched == ["web-abc-0"]
    assert not elsewhere.ok and elsewhere.temporary
    assert elsewhere.error == "host 'host2' is not in the fleet (one daemon: host default)"
    assert isinstance(HostUnavailable("h", "x"), TemporaryError)
    with pytest.raises(HostUnavailable) as refused:
        OneHost(one).client("host2")  # type: ignore[arg-type]
    assert refused.value.host == "host2"  # names the host, as the fleet's refusals do


async def test_a_hosts_bound_holds_while_its_waiting_launches_take_their_turns() -> None:
    """Limit 3, seven launches: as each one ends the next waiter goes, never a fourth at once."""
    one = Daemon()
    names = [f"a{i}" for i in range(7)]
    for name in names:
        one.gates[name] = asyncio.Event()
    ex = executor(Hosts({"host1": one}, {"host1": 3}))
    tasks = [asyncio.create_task(ex.run_action(SPEC, launch(n, "host1"))) for n in names]
    await settle()
    assert one.launched == names[:3]
    for done, name in enumerate(names, start=1):
        one.gates[name].set()
        await settle()
        assert one.launched == names[: min(7, done + 3)], done  # a freed slot is taken
        assert one.most_at_once <= 3, done
    assert all(r.ok for r in await asyncio.gather(*tasks))
    assert one.most_at_once == 3
    # Every slot came back: three more go out at once.
    for name in ("b0", "b1", "b2"):
        one.gates[name] = asyncio.Event()
    more = [
        asyncio.create_task(ex.run_action(SPEC, launch(n, "host1"))) for n in ("b0", "b1", "b2")
    ]
    await settle()
    assert one.launched[7:] == ["b0", "b1", "b2"]
    for gate in one.gates.values():
        gate.set()
    assert all(r.ok for r in await asyncio.gather(*more))


async def test_a_launch_cancelled_in_the_instant_its_slot_is_granted_gives_it_back() -> None:
    """A pass cancelled just as a host slot came free for one of its launches leaks no slot.

    The host's limit is read when a waiter takes the slot (a release wakes it); that read
    is the moment to cancel the waiting launch: granted, but not yet resumed.
    """
    one = Daemon()
    one.gates["a0"] = asyncio.Event()
    hosts = Hosts({"host1": one}, {"host1": 1})
    ex = executor(hosts)
    first = asyncio.create_task(ex.run_action(SPEC, launch("a0", "host1")))
    await settle()
    queued = asyncio.create_task(ex.run_action(SPEC, launch("a1", "host1")))
    await settle()
    assert one.launched == ["a0"]

    reads = 0

    def limit_then_cancel(host: str) -> int | None:
        nonlocal reads
        reads += 1
        asyncio.get_running_loop().call_soon(queued.cancel)
        return 1

    hosts.launch_limit = limit_then_cancel  # type: ignore[method-assign]
    one.gates["a0"].set()
    assert (await first).ok
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert reads == 1  # the waiter took the freed slot before the cancel reached it
    assert one.launched == ["a0"]
    hosts.launch_limit = lambda host: 1  # type: ignore[method-assign]
    later = await asyncio.wait_for(ex.run_action(SPEC, launch("a2", "host1")), 5)
    assert later.ok and one.launched == ["a0", "a2"]  # the slot came back


async def test_drains_and_purges_go_to_nomad_even_when_their_host_has_no_client() -> None:
    """A member on a host that is down is still drained and its node purged: those are
    Nomad's calls, and the host's missing daemon has no say in them."""
    nodes = Nodes()
    ex = executor(Hosts({}, {}), nodes)
    results = await ex.execute(
        SPEC,
        [
            Action(ActionKind.DRAIN, "web-abc-host9-1", "unhealthy", node_id="n1", host="host9"),
            Action(ActionKind.PURGE_NODE, "web-abc-host9-2", "gone", node_id="n2", host="host9"),
        ],
    )
    assert [(r.ok, r.error) for r in results] == [(True, None), (True, None)]
    assert (nodes.drained, nodes.purged) == (["n1"], ["n2"])
