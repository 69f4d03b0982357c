"""Down time across passes, seen only through Nomad's node list.

The list's stubs carry no StatusUpdatedAt, so no stub says since when a node has
been down. The observer remembers when it first saw each node down; a member
whose node stays down over several passes becomes unhealthy once
``unhealthy_timeout`` has passed since then (not since the latest pass), and is
replaced. A node that comes back and goes down again starts a new count.

Driven through ``Observer.observe`` (fake clients that answer as Nomad's list
endpoints and multipassd do) and ``plan(...)``, on a hand-moved clock.
"""

from __future__ import annotations

from typing import Any

from reconciler.clock import ManualClock
from reconciler.model import Instance, InstanceState
from reconciler.nomad.models import QueryResult, parse_node
from reconciler.observe import Observer
from reconciler.plan import ActionKind, Phase, plan
from tests.worlds import spec

S = spec(min=1, max=3, unhealthy_timeout="5m")
NAME = f"web-{S.template_hash}-0"


def stub(status: str, modify_index: int) -> dict[str, Any]:
    """A node as ``GET /v1/nodes?resources=true`` lists it: no Meta, no StatusUpdatedAt."""
    return {
        "ID": "node-0",
        "Name": NAME,
        "Datacenter": "dc1",
        "NodeClass": "web",
        "NodePool": "default",
        "Status": status,
        "SchedulingEligibility": "eligible",
        "Drain": False,
        "CreateIndex": 5,
        "ModifyIndex": modify_index,
        "NodeResources": {"Cpu": {"CpuShares": 4000}, "Memory": {"MemoryMB": 2048}},
    }


class Nomad:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.index = 10

    async def list_nodes(self, **_: object) -> QueryResult[list[Any]]:
        return QueryResult([parse_node("GET /v1/nodes", n) for n in self.nodes], self.index)

    async def list_allocations(self, **_: object) -> QueryResult[list[Any]]:
        return QueryResult([], self.index)

    async def list_evaluations(self, **_: object) -> QueryResult[list[Any]]:
        return QueryResult([], self.index)


class Multipass:
    def __init__(self, clock: ManualClock) -> None:
        self.refused_images: dict[str, str] = {}  # no launch was refused its image
        self.instances = [Instance(NAME, InstanceState.RUNNING, created_at=clock.now() - 3600)]

    async def list_instances(self) -> list[Instance]:
        return list(self.instances)


def setup() -> tuple[ManualClock, Nomad, Observer]:
    clock = ManualClock()
    nomad = Nomad()
    observer = Observer(nomad, Multipass(clock), clock)  # type: ignore[arg-type]
    return clock, nomad, observer


async def test_a_node_down_over_several_passes_is_unhealthy_from_when_it_first_went_down() -> None:
    clock, nomad, observer = setup()
    nomad.nodes = [stub("ready", 11)]
    assert plan(S, await observer.observe(), clock.now()).actions == ()

    clock.advance(30)
    went_down = clock.now()
    nomad.nodes = [stub("down", 12)]
    # Passes every minute: each sees the same stub, with no time in it.
    for _ in range(5):
        observed = await observer.observe()
        [node] = observed.nodes
        assert node.status_updated_at == went_down  # remembered, not the latest pass
        p = plan(S, observed, clock.now())
        [member] = p.members
        assert member.phase is Phase.DOWN and member.unhealthy is None
        assert p.actions == ()
        clock.advance(60)
    # 5 minutes since it went down; one more pass past the timeout: replaced.
    clock.advance(1)
    p = plan(S, await observer.observe(), clock.now())
    [member] = [m for m in p.members if m.name == NAME]
    assert member.unhealthy == "node down for over 5m"
    assert [(a.kind, a.instance) for a in p.actions] == [
        (ActionKind.LAUNCH, f"web-{S.template_hash}-1")
    ]


async def test_a_node_that_came_back_starts_a_new_count_when_it_goes_down_again() -> None:
    clock, nomad, observer = setup()
    nomad.nodes = [stub("down", 12)]
    await observer.observe()
    clock.advance(240)
    nomad.nodes = [stub("ready", 13)]  # back, before the timeout
    await observer.observe()
    clock.advance(30)
    again = clock.now()
    nomad.nodes = [stub("down", 14)]
    observed = await observer.observe()
    assert observed.nodes[0].status_updated_at == again
    clock.advance(120)  # 6.5 minutes since the first fall, 2 since this one
    p = plan(S, await observer.observe(), clock.now())
    assert p.members[0].unhealthy is None
    assert p.actions == ()


async def test_disconnected_counts_as_down_for_the_clock() -> None:
    clock, nomad, observer = setup()
    nomad.nodes = [stub("disconnected", 12)]
    await observer.observe()
    clock.advance(301)
    p = plan(S, await observer.observe(), clock.now())
    assert p.members[0].unhealthy == "node disconnected for over 5m"
