"""The Nomad client against the Nomad simulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp import web

from reconciler.clock import ManualClock
from reconciler.nomad import (
    BadRequest,
    CasConflict,
    LockHeld,
    LockLost,
    NodeDetails,
    NodeStub,
    NomadClient,
    NomadError,
    NomadSettings,
    NomadUnavailable,
    NotFound,
    PermissionDenied,
    ProtocolError,
    TlsVerificationFailed,
)
from reconciler.sim.certs import generate
from reconciler.sim.faults import Fault
from reconciler.sim.nomad_server import NomadSimServer
from reconciler.sim.nomad_state import NomadState, Policy

T = TypeVar("T")
POOLS = "nomad/jobs/multipass-reconciler/pools/"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def server(clock: ManualClock) -> AsyncIterator[NomadSimServer]:
    state = NomadState(
        clock,
        random.Random(3),
        init_seconds=5,
        heartbeat_timeout=30,
        migrate_seconds=10,
        alloc_start_seconds=0,
    )
    srv = NomadSimServer(state, rng=random.Random(1))
    await srv.start()
    yield srv
    await srv.stop()


def client(address: str, token: str | None = None, **kw: Any) -> NomadClient:
    opts: dict[str, Any] = {"timeout": 5.0, "attempts": 3, "backoff_max": 0.01} | kw
    return NomadClient(NomadSettings(address=address, token=token), **opts)


@pytest.fixture
async def nomad(server: NomadSimServer) -> AsyncIterator[NomadClient]:
    async with client(server.address) as c:
        yield c


def advance(server: NomadSimServer, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    server.state.tick()


def ready_node(server: NomadSimServer, clock: ManualClock, name: str, **kw: Any) -> str:
    node_id = server.state.register_node(name, **kw)
    advance(server, clock, 5)
    return node_id


async def until_blocked(server: NomadSimServer, task: asyncio.Task[T], watchers: int = 1) -> None:
    """Wait (bounded) until the server holds ``watchers`` blocking queries open."""

    async def poll() -> None:
        while len(server.state.listeners) < watchers:
            assert not task.done(), "the blocking query answered early"
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), 5)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def bounded(aw: Awaitable[T]) -> T:
    return await asyncio.wait_for(aw, 10)


# ---------------------------------------------------------------- variables


async def test_variable_round_trip_and_listing(nomad: NomadClient) -> None:
    created = await nomad.put_var(POOLS + "web", {"min": "1", "max": "3"})
    assert created.items == {"min": "1", "max": "3"}
    assert created.create_index == created.modify_index > 0
    await nomad.put_var("nomad/jobs/multipass-reconciler/status/web", {"phase": "ok"})
    got = await nomad.get_var(POOLS + "web")
    assert got == created
    listing = await nomad.list_vars(POOLS)
    assert [m.path for m in listing.value] == [POOLS + "web"]
    assert listing.index >= created.modify_index
    await nomad.delete_var(POOLS + "web")
    with pytest.raises(NotFound):
        await nomad.get_var(POOLS + "web")


async def test_cas_conflicts_carry_the_current_variable(nomad: NomadClient) -> None:
    v = await nomad.put_var(POOLS + "web", {"min": "1"}, cas=0)
    with pytest.raises(CasConflict) as exc:
        await nomad.put_var(POOLS + "web", {"min": "2"}, cas=0)
    assert exc.value.current is not None
    assert exc.value.current.modify_index == v.modify_index
    assert exc.value.current.items == {"min": "1"}
    with pytest.raises(CasConflict) as missing:
        await nomad.put_var(POOLS + "nope", {"min": "2"}, cas=7)
    assert missing.value.current is None
    updated = await nomad.put_var(POOLS + "web", {"min": "2"}, cas=v.modify_index)
    with pytest.raises(CasConflict):
        await nomad.delete_var(POOLS + "web", cas=v.modify_index)
    await nomad.delete_var(POOLS + "web", cas=updated.modify_index)


async def test_bad_requests(nomad: NomadClient) -> None:
    with pytest.raises(BadRequest, match="invalid path"):
        await nomad.put_var("bad path!", {"a": "b"})
    with pytest.raises(BadRequest, match="Items"):
        await nomad.put_var(POOLS + "empty", {})
    with pytest.raises(BadRequest, match="TTL"):
        await nomad.lock_acquire("locks/x", ttl=1)


async def test_locks(server: NomadSimServer, clock: ManualClock, nomad: NomadClient) -> None:
    var, lock_id = await nomad.lock_acquire("locks/leader", ttl=10, lock_delay=5)
    assert var.lock is not None and var.lock.ttl == 10 and var.lock.lock_delay == 5
    with pytest.raises(LockHeld):
        await nomad.lock_acquire("locks/leader", ttl=10, lock_delay=5)
    with pytest.raises(LockHeld):
        await nomad.put_var("locks/leader", {"x": "y"})  # locked: plain writes conflict
    meta = await nomad.lock_renew("locks/leader", lock_id)
    assert meta.lock_id == lock_id
    advance(server, clock, 21)  # 2 x TTL without a renewal: the lock lapsed
    with pytest.raises(LockLost):
        await nomad.lock_renew("locks/leader", lock_id)
    with pytest.raises(LockHeld):
        await nomad.lock_acquire("locks/leader", ttl=10, lock_delay=5)  # lock-delay
    advance(server, clock, 5)
    _, second = await nomad.lock_acquire("locks/leader", ttl=10, lock_delay=5)
    with pytest.raises(LockLost):
        await nomad.lock_release("locks/leader", lock_id)  # the old holder's ID
    released = await nomad.lock_release("locks/leader", second)
    assert released.lock is None
    with pytest.raises(LockLost):
        await nomad.lock_release("locks/leader", second)  # Nomad's 500, recognised


async def test_a_lock_acquire_writes_the_variable_it_carries(nomad: NomadClient) -> None:
    """VarLockAcquire overwrites the variable, data included (state_store_variables.go)."""
    await nomad.put_var("locks/leader", {"holder": "old", "note": "kept?"})
    var, lock_id = await nomad.lock_acquire("locks/leader", ttl=10, items={"holder": "new"})
    assert var.items == {"holder": "new"}
    assert (await nomad.get_var("locks/leader")).items == {"holder": "new"}
    await nomad.lock_release("locks/leader", lock_id)
    assert (await nomad.get_var("locks/leader")).items == {"holder": "new"}  # release keeps them
    await nomad.lock_acquire("locks/leader", ttl=10)  # no items: the variable is emptied
    assert (await nomad.get_var("locks/leader")).items == {}


# ---------------------------------------------------------------- nodes


async def test_nodes_drains_eligibility_and_purge(
    server: NomadSimServer, clock: ManualClock, nomad: NomadClient
) -> None:
    a = ready_node(server, clock, "pool-bcdfg-0", meta={"k": "v"}, cpu_mhz=4000, memory_mb=4096)
    b = ready_node(server, clock, "pool-bcdfg-1", reserved_cpu_mhz=500, reserved_memory_mb=256)
    server.state.run_job("web", count=2, cpu_mhz=1000, memory_mb=512)
    stubs = await nomad.list_nodes()
    by_name = {n.name: n for n in stubs.value}
    assert by_name["pool-bcdfg-0"].status == "ready"
    assert by_name["pool-bcdfg-0"].cpu_mhz == 4000
    assert by_name["pool-bcdfg-1"].cpu_mhz == 3500  # what may be allocated
    assert dict(by_name["pool-bcdfg-0"].meta) == {}  # stubs carry no Meta, as in Nomad
    full = await nomad.get_node(a)
    assert dict(full.meta) == {"k": "v"} and full.status_updated_at == clock.now() - 5

    allocs = await nomad.node_allocations(a)
    assert {x.job_id for x in allocs.value} == {"web"}
    assert all(x.cpu_mhz == 1000 and x.job_type == "service" for x in allocs.value)

    meta = {"multipass-reconciler.owner": "multipass-reconciler"}
    await nomad.drain_node(a, deadline_s=300, meta=meta)
    draining = await nomad.get_node(a)
    assert draining.drain and not draining.eligible
    assert draining.drain_strategy is not None
    assert draining.drain_deadline_at == clock.now() + 300
    assert draining.last_drain is not None and draining.last_drain.status == "draining"
    advance(server, clock, 20)
    done = {n.id: n for n in (await nomad.list_nodes()).value}[a]
    assert not done.drain and done.last_drain is not None
    assert done.last_drain.status == "complete" and dict(done.last_drain.meta) == meta
    live_b = [x for x in (await nomad.list_allocations()).value if x.node_id == b and x.is_live]
    assert len(live_b) == 2

    await nomad.drain_node(b, deadline_s=0)
    await nomad.cancel_drain(b, mark_eligible=True)
    canceled = await nomad.get_node(b)
    assert canceled.eligible and canceled.last_drain is not None
    assert canceled.last_drain.status == "canceled"

    await nomad.set_eligibility(a, True)
    assert (await nomad.get_node(a)).eligible
    await nomad.drain_node(b, deadline_s=60)  # b still has work, so it stays draining
    with pytest.raises(BadRequest, match="draining"):
        await nomad.set_eligibility(b, True)

    await nomad.purge_node(a)
    with pytest.raises(NotFound):
        await nomad.get_node(a)
    before = server.requests["PUT /v1/node/" + a + "/purge"]
    with pytest.raises(NotFound):  # Nomad answers 500 "node not found": not retried
        await nomad.purge_node(a)
    assert server.requests["PUT /v1/node/" + a + "/purge"] == before + 1
    with pytest.raises(NotFound):
        await nomad.drain_node(a, deadline_s=60)


async def test_nodes_carry_events_as_nomad_records_them(
    server: NomadSimServer, clock: ManualClock, nomad: NomadClient
) -> None:
    """Node.Events: registration, drain set / updated / disabled / complete, heartbeats."""
    a = ready_node(server, clock, "n-0")
    server.state.run_job("web", count=1, cpu_mhz=100, memory_mb=64)

    def said(node: NodeStub) -> list[tuple[str, str]]:
        return [(e.subsystem, e.message) for e in node.events]

    registered = await nomad.get_node(a)
    assert said(registered) == [("Cluster", "Node registered")]
    assert registered.events[0].create_index == registered.create_index
    assert registered.events[0].timestamp == clock.now() - 5
    await nomad.drain_node(a, deadline_s=0)
    await nomad.drain_node(a, deadline_s=600)  # a new spec for a drain under way
    await nomad.cancel_drain(a)
    await nomad.cancel_drain(a)  # nothing was draining: no event
    index = await nomad.set_eligibility(a, True)
    assert index == (await nomad.get_node(a)).modify_index  # the write's index
    assert await nomad.set_eligibility(a, True) == 0  # nothing to do: nothing written
    await nomad.drain_node(a, deadline_s=5)
    advance(server, clock, 5)  # the deadline stops what is left
    node = await nomad.get_node(a)
    assert said(node)[1:] == [
        ("Drain", "Node drain strategy set"),
        ("Drain", "Node drain strategy updated"),
        ("Drain", "Node drain disabled"),
        ("Cluster", "Node marked as eligible for scheduling"),
        ("Drain", "Node drain strategy set"),
        ("Drain", "Node drain complete"),
    ]
    assert dict(node.events[-1].details) == {"deadline_reached": "true"}
    server.state.node_lost("n-0")
    advance(server, clock, 30)
    server.state.node_recovered("n-0")
    tail = said(await nomad.get_node(a))[-2:]
    assert tail == [
        ("Cluster", "Node heartbeat missed"),
        ("Cluster", "Node reregistered by heartbeat"),
    ]
    for _ in range(10):  # Nomad keeps the last ten (structs.MaxRetainedNodeEvents)
        await nomad.set_eligibility(a, False)
        await nomad.set_eligibility(a, True)
    assert len((await nomad.get_node(a)).events) == 10
    assert not (await nomad.list_nodes()).value[0].events  # stubs carry none


async def test_blocked_evaluations_say_what_was_asked(
    server: NomadSimServer, clock: ManualClock, nomad: NomadClient
) -> None:
    ready_node(server, clock, "n", cpu_mhz=2000, memory_mb=1024, node_class="small")
    server.state.run_job("big", count=2, cpu_mhz=500, memory_mb=768)
    evals = await nomad.list_evaluations()
    [ev] = evals.value
    assert ev.status == "blocked" and ev.job_id == "big" and ev.queued == 1
    assert ev.asked().memory_mb == 768
    assert ev.datacenters == ("dc1",) and ev.node_pool == "default"
    assert dict(ev.class_eligibility) == {"small": True}
    ready_node(server, clock, "m", cpu_mhz=2000, memory_mb=1024)
    assert (await nomad.list_evaluations()).value == []


# ---------------------------------------------------------------- blocking queries


async def test_a_node_list_blocks_until_a_node_changes(
    server: NomadSimServer, clock: ManualClock, nomad: NomadClient
) -> None:
    first = await nomad.list_nodes()
    task = asyncio.create_task(nomad.list_nodes(index=first.index, wait=30))
    await until_blocked(server, task)
    server.state.register_node("late")
    result = await bounded(task)
    assert result.index > first.index
    assert [n.name for n in result.value] == ["late"]


async def test_the_node_watch_wakes_with_the_index_when_a_node_changes(
    server: NomadSimServer, clock: ManualClock, nomad: NomadClient
) -> None:
    a = ready_node(server, clock, "pool-bcdfg-0")
    first = await nomad.list_nodes()
    task = asyncio.create_task(nomad.wait_for_nodes(first.index, 30))
    await until_blocked(server, task)
    await nomad.set_eligibility(a, False)
    assert await bounded(task) == (await nomad.list_nodes()).index > first.index


async def test_a_node_list_shows_each_change_and_parses_only_the_nodes_that_changed(
    server: NomadSimServer, clock: ManualClock, nomad: NomadClient
) -> None:
    a = ready_node(server, clock, "pool-bcdfg-0")
    b = ready_node(server, clock, "pool-bcdfg-1")
    first = {n.id: n for n in (await nomad.list_nodes()).value}
    await nomad.set_eligibility(a, False)
    again = {n.id: n for n in (await nomad.list_nodes()).value}
    assert not again[a].eligible  # the change, never the last list's stub
    assert again[a].modify_index > first[a].modify_index
    assert again[b] is first[b]  # unchanged: the stub of the last list, not parsed again
    # A list without resources is a different answer: its own stubs.
    bare = {n.id: n for n in (await nomad.list_nodes(resources=False)).value}
    assert bare[b] is not again[b] and bare[b].cpu_mhz == 0
    assert (await nomad.list_nodes()).value[1] is again[b]
    await nomad.purge_node(b)
    assert [n.id for n in (await nomad.list_nodes()).value] == [a]


async def test_a_blocking_query_times_out_with_the_same_index(nomad: NomadClient) -> None:
    await nomad.put_var(POOLS + "a", {"min": "1"})
    first = await nomad.list_vars(POOLS)
    again = await bounded(nomad.list_vars(POOLS, index=first.index, wait=0.2))
    assert again.index == first.index
    assert again.value == first.value


async def test_a_wait_of_zero_is_a_read_that_does_not_block(
    server: NomadSimServer, nomad: NomadClient
) -> None:
    """Nomad holds ?index=N&wait=0s for its default 5 minutes; the client must not send it."""
    await nomad.put_var(POOLS + "a", {"min": "1"})
    first = await nomad.list_vars(POOLS)
    again = await bounded(nomad.list_vars(POOLS, index=first.index, wait=0))
    assert again.index == first.index and again.value == first.value
    assert not server.state.listeners  # answered without being held


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A server that answers GET /v1/vars with [] and records each request's query."""
    queries: list[dict[str, str]] = []

    async def vars_(request: web.Request) -> web.Response:
        queries.append(dict(request.query))
        return web.json_response([], headers={"X-Nomad-Index": "9"})

    app = web.Application()
    app.router.add_get("/v1/vars", vars_)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", queries
    await runner.cleanup()


async def test_blocking_parameters_are_what_nomad_honours(
    recorder: tuple[str, list[dict[str, str]]],
) -> None:
    address, queries = recorder
    async with client(address) as c:
        await c.list_vars("p/")  # a plain read
        await c.list_vars("p/", index=0, wait=30)  # index 0: Nomad does not block
        await c.list_vars("p/", index=5, wait=-1)  # "no wait": a plain read as well
        await c.list_vars("p/", index=5, wait=900)  # Nomad holds 5 minutes at most
        await c.list_vars("p/", index=5)  # Nomad's default, said explicitly
    assert queries == [
        {"prefix": "p/"},
        {"prefix": "p/"},
        {"prefix": "p/"},
        {"prefix": "p/", "index": "5", "wait": "300s"},
        {"prefix": "p/", "index": "5", "wait": "300s"},
    ]


async def test_a_variable_watch_wakes_only_for_its_prefix(
    server: NomadSimServer, nomad: NomadClient
) -> None:
    await nomad.put_var(POOLS + "a", {"min": "1"})
    first = await nomad.list_vars(POOLS)
    task = asyncio.create_task(nomad.list_vars(POOLS, index=first.index, wait=30))
    await until_blocked(server, task)
    # Status lives outside the prefix: the watch must not wake for it.
    server.state.put_var("default", "nomad/jobs/multipass-reconciler/status/a", {"s": "1"})
    await settle()
    assert not task.done() and len(server.state.listeners) == 1
    server.state.put_var("default", POOLS + "b", {"min": "2"})
    result = await bounded(task)
    assert [m.path for m in result.value] == [POOLS + "a", POOLS + "b"]


async def test_the_variable_index_is_the_tables_so_outside_writes_move_it(
    server: NomadSimServer, nomad: NomadClient
) -> None:
    """As in Nomad: a write anywhere moves the index a prefix watch sees (not its contents)."""
    await nomad.put_var(POOLS + "a", {"min": "1"})
    first = await nomad.list_vars(POOLS)
    await nomad.put_var("elsewhere/x", {"k": "v"})
    result = await bounded(nomad.list_vars(POOLS, index=first.index, wait=30))
    assert result.index > first.index
    assert result.value == first.value


# ---------------------------------------------------------------- failures


async def test_a_flaky_endpoint_succeeds_after_retries(server: NomadSimServer) -> None:
    server.faults.set("GET /v1/nodes", Fault(error_rate=0.5))
    async with client(server.address, attempts=10) as c:
        for _ in range(5):
            await c.list_nodes()
    # Five answers took more than five requests: some failed and were retried.
    assert server.requests["GET /v1/nodes"] > 5


async def test_an_endpoint_that_keeps_failing_is_unavailable_after_the_attempts(
    server: NomadSimServer,
) -> None:
    server.faults.set("PUT /v1/var/*", Fault(error_rate=1.0))
    async with client(server.address, attempts=3) as c:
        with pytest.raises(NomadUnavailable) as exc:
            await c.put_var(POOLS + "a", {"min": "1"})
        assert exc.value.status == 500
    assert server.requests["PUT /v1/var/" + POOLS + "a"] == 3


async def test_a_hung_server_is_unavailable_after_the_timeout(server: NomadSimServer) -> None:
    server.faults.set("GET /v1/allocations", Fault(hang=True))
    async with client(server.address, attempts=2, timeout=0.2) as c:
        with pytest.raises(NomadUnavailable, match="no answer"):
            await c.list_allocations()
    assert server.requests["GET /v1/allocations"] == 2


async def test_a_denial_without_a_token_says_to_set_one(clock: ManualClock) -> None:
    state = NomadState(clock, random.Random(1), acl=True)
    reader = state.add_token(Policy(variables={POOLS + "*": {"read", "list"}}))
    async with NomadSimServer(state) as srv:
        async with client(srv.address) as anonymous:
            with pytest.raises(PermissionDenied) as exc:
                await anonymous.list_nodes()
        assert "no ACL token is set" in str(exc.value) and "NOMAD_TOKEN" in str(exc.value)
        async with client(srv.address, token=reader) as c:
            with pytest.raises(PermissionDenied) as denied:
                await c.list_nodes()  # a token that may not: its policy is the matter
        assert "NOMAD_TOKEN" not in str(denied.value)
        assert "Permission denied" in str(denied.value)


@pytest.fixture
async def web_page() -> AsyncIterator[str]:
    """Not Nomad: a web server that answers every path with an HTML page."""

    async def page(request: web.Request) -> web.Response:
        status = 404 if request.path.startswith("/v1/var") else 200
        html = "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>" + (
            "x" * 2000
        )
        return web.Response(status=status, text=html, content_type="text/html")

    async def bad_gateway(request: web.Request) -> web.Response:
        html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        return web.Response(status=502, text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/v1/allocations", bad_gateway)
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_a_server_that_is_not_nomad_is_named_as_such(web_page: str) -> None:
    async with client(web_page, attempts=2) as c:
        calls: list[Callable[[], Awaitable[object]]] = [
            c.list_nodes,
            lambda: c.get_var("a/b"),
            c.list_allocations,  # a 502 page: unavailable (retried), named all the same
        ]
        for call in calls:
            with pytest.raises(NomadError) as exc:
                await call()
            message = str(exc.value)
            assert f"{web_page} is not a Nomad agent" in message, message
            assert "NOMAD_ADDR" in message and "<" not in message and len(message) < 300
        assert "Welcome to nginx!" in message or "502 Bad Gateway" in message


async def test_a_denial_is_not_retried_and_the_token_never_shows(
    clock: ManualClock,
) -> None:
    state = NomadState(clock, random.Random(1), acl=True)
    reader = state.add_token(Policy(variables={POOLS + "*": {"read", "list"}}))
    async with NomadSimServer(state) as srv:
        async with client(srv.address, token=reader) as c:
            assert reader not in repr(c) and reader not in repr(c.settings)
            await c.list_vars(POOLS)
            with pytest.raises(PermissionDenied) as exc:
                await c.put_var(POOLS + "a", {"min": "1"})
            assert "Permission denied" in str(exc.value)
            assert reader not in str(exc.value) and reader not in repr(exc.value)
            with pytest.raises(PermissionDenied):
                await c.list_nodes()
        assert srv.requests["PUT /v1/var/" + POOLS + "a"] == 1
        assert srv.requests["GET /v1/nodes"] == 1
        async with client(srv.address, token="not-a-token") as c:
            with pytest.raises(PermissionDenied, match="ACL token not found"):
                await c.get_var(POOLS + "a")
        # Nomad also takes the token as a bearer credential.
        async with httpx.AsyncClient(base_url=srv.address) as raw:
            bearer = await raw.get("/v1/vars", headers={"Authorization": f"Bearer {reader}"})
            anonymous = await raw.get("/v1/var/" + POOLS + "a")
        assert bearer.status_code == 200
        assert anonymous.status_code == 403 and anonymous.text == "Permission denied"
        # The agent refuses a body without Items before the server authorizes anything.
        async with httpx.AsyncClient(base_url=srv.address) as raw:
            empty = await raw.put("/v1/var/" + POOLS + "a", json={"Items": {}})
        assert empty.status_code == 400 and empty.text == "variable missing required Items object"


async def test_an_unreachable_address_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with client(f"http://127.0.0.1:{port}", token="s3cr3t-token") as c:
        with pytest.raises(NomadUnavailable) as exc:
            await c.list_nodes()
    assert exc.value.sent is False
    assert "s3cr3t-token" not in str(exc.value)


@pytest.fixture
async def garbage() -> AsyncIterator[str]:
    """A server that answers every Nomad path with something Nomad would never send."""

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="proxy error", headers={"X-Nomad-Index": "5"})

    async def wrong_shape(request: web.Request) -> web.Response:
        return web.json_response({"not": "a list"}, headers={"X-Nomad-Index": "5"})

    async def missing_field(request: web.Request) -> web.Response:
        return web.json_response({"Namespace": "default", "Items": {"a": "b"}})

    async def bad_index(request: web.Request) -> web.Response:
        return web.json_response([], headers={"X-Nomad-Index": "soon"})

    app = web.Application()
    app.router.add_get("/v1/nodes", not_json)
    app.router.add_get("/v1/allocations", wrong_shape)
    app.router.add_get("/v1/var/{path:.+}", missing_field)
    app.router.add_get("/v1/evaluations", bad_index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_malformed_answers_are_protocol_errors(garbage: str) -> None:
    async with client(garbage) as c:
        with pytest.raises(ProtocolError, match=r"GET /v1/nodes: answer is not JSON"):
            await c.list_nodes()
        with pytest.raises(ProtocolError, match=r"GET /v1/allocations: expected a JSON array"):
            await c.list_allocations()
        with pytest.raises(ProtocolError, match=r"field Path is missing"):
            await c.get_var("a/b")
        with pytest.raises(ProtocolError, match=r"X-Nomad-Index 'soon'"):
            await c.list_evaluations()


# ---------------------------------------------------------------- TLS


async def test_mutual_tls_with_a_pinned_ca_and_a_server_name(
    clock: ManualClock, tmp_path: Path
) -> None:
    certs = generate(tmp_path, server_name="server.global.nomad")
    # The client certificate is self-signed: it is its own CA.
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.client_cert))
    server_tls.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    server_tls.verify_mode = ssl.CERT_REQUIRED
    state = NomadState(clock, random.Random(1))
    async with NomadSimServer(state, ssl_context=server_tls) as srv:
        port = srv.port
        tls = {
            "ca_cert": str(certs.root_cert),
            "client_cert": str(certs.client_cert),
            "client_key": str(certs.client_key),
        }

        def settings(**kw: Any) -> NomadSettings:
            return NomadSettings(address=f"https://localhost:{port}", **(tls | kw))

        opts: dict[str, Any] = {"attempts": 1, "timeout": 5.0}
        # The certificate names server.global.nomad, not localhost: verified against that name.
        async with NomadClient(settings(tls_server_name="server.global.nomad"), **opts) as c:
            assert (await c.list_nodes()).value == []
        async with NomadClient(settings(), attempts=3, timeout=5.0) as c:
            with pytest.raises(TlsVerificationFailed, match="NOMAD_TLS_SERVER_NAME"):
                await c.list_nodes()  # a setting to fix: not retried
        assert srv.requests["GET /v1/nodes"] == 1
        async with NomadClient(settings(skip_verify=True), **opts) as c:
            assert (await c.list_nodes()).value == []
        no_client_cert = NomadSettings(
            address=f"https://localhost:{port}",
            ca_cert=str(certs.root_cert),
            tls_server_name="server.global.nomad",
        )
        async with NomadClient(no_client_cert, **opts) as c:
            with pytest.raises(NomadUnavailable):
                await c.list_nodes()


async def test_node_details_read_a_node_again_only_when_it_changed(
    server: NomadSimServer, clock: ManualClock, nomad: NomadClient
) -> None:
    a = ready_node(server, clock, "a", meta={"multipass-reconciler.protect": "true"})
    b = ready_node(server, clock, "b")
    details = NodeDetails(nomad)
    stubs = (await nomad.list_nodes()).value
    full = {n.id: n for n in await details.refresh(stubs)}
    assert full[a].meta["multipass-reconciler.protect"] == "true"
    assert full[b].status_updated_at is not None
    assert details.reads == 2
    await details.refresh((await nomad.list_nodes()).value)
    assert details.reads == 2  # nothing changed: no reads
    await nomad.drain_node(b, deadline_s=60)
    again = {n.id: n for n in await details.refresh((await nomad.list_nodes()).value)}
    assert details.reads == 3  # only b changed
    last = again[b].last_drain
    assert last is not None and last.status == "complete"  # an empty node drains at once
    # a changed, then was purged between the list and the full read: it is dropped.
    changed = [dataclasses.replace(n, modify_index=n.modify_index + 1) for n in stubs]
    server.state.purge_node(a)
    assert [n.id for n in await details.refresh(changed)] == [b]
