"""The Nomad simulator on the wire, seen with a plain HTTP client: Nomad's shapes and codes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from reconciler.clock import ManualClock
from reconciler.sim.faults import Fault
from reconciler.sim.nomad_server import (
    NomadSimServer,
    go_duration,
    parse_duration,
    rfc3339,
    time_to_block,
)
from reconciler.sim.nomad_state import NomadState


@pytest.fixture
async def sim() -> AsyncIterator[tuple[NomadSimServer, httpx.AsyncClient]]:
    clock = ManualClock()
    state = NomadState(clock, random.Random(5), init_seconds=0, alloc_start_seconds=0)
    async with NomadSimServer(state) as srv, httpx.AsyncClient(base_url=srv.address) as http:
        yield srv, http


async def test_variable_write_read_delete_shapes(
    sim: tuple[NomadSimServer, httpx.AsyncClient],
) -> None:
    _, http = sim
    put = await http.put(
        "/v1/var/app/x", json={"Namespace": "default", "Path": "app/x", "Items": {"a": "b"}}
    )
    assert put.status_code == 200 and put.headers["content-type"].startswith("application/json")
    body = put.json()
    assert set(body) >= {"Namespace", "Path", "CreateIndex", "ModifyIndex", "CreateTime", "Items"}
    assert int(put.headers["X-Nomad-Index"]) == body["ModifyIndex"]
    assert isinstance(body["CreateTime"], int) and body["CreateTime"] > 10**18  # nanoseconds
    listing = await http.get("/v1/vars", params={"prefix": "app/"})
    assert "Items" not in listing.json()[0]
    conflict = await http.put("/v1/var/app/x?cas=0", json={"Items": {"a": "c"}})
    assert conflict.status_code == 409 and conflict.json()["Items"] == {"a": "b"}
    deleted = await http.delete("/v1/var/app/x")
    assert deleted.status_code == 204 and int(deleted.headers["X-Nomad-Index"]) > 0
    missing = await http.get("/v1/var/app/x")
    assert missing.status_code == 404 and missing.text == "variable not found"
    assert missing.headers["content-type"].startswith("text/plain")


async def test_lock_shapes(sim: tuple[NomadSimServer, httpx.AsyncClient]) -> None:
    _, http = sim
    acquired = await http.put(
        "/v1/var/locks/l?lock-acquire", json={"Lock": {"TTL": "15s", "LockDelay": "1m"}}
    )
    lock = acquired.json()["Lock"]
    assert lock["TTL"] == "15s" and lock["LockDelay"] == "1m0s" and lock["ID"]
    held = await http.put("/v1/var/locks/l?lock-acquire", json={"Lock": {}})
    assert held.status_code == 409 and held.json()["ModifyIndex"] == 0  # a placeholder
    both = await http.put("/v1/var/locks/l?lock-acquire&cas=1", json={})
    assert both.status_code == 400 and "CAS" in both.text
    renew = await http.put("/v1/var/locks/l?lock-renew", json={"Lock": {"ID": lock["ID"]}})
    assert renew.status_code == 200 and "Items" not in renew.json()
    wrong = await http.put("/v1/var/locks/l?lock-release", json={"Lock": {"ID": "other"}})
    assert wrong.status_code == 409
    for items in ({}, {"a": "b"}):  # Nomad refuses any Items on a release, even an empty map
        with_items = await http.put(
            "/v1/var/locks/l?lock-release", json={"Lock": {"ID": lock["ID"]}, "Items": items}
        )
        assert with_items.status_code == 400
        assert with_items.text == "lock release operation doesn't take variable items"
    release = await http.put("/v1/var/locks/l?lock-release", json={"Lock": {"ID": lock["ID"]}})
    assert release.status_code == 200 and "Lock" not in release.json()


async def test_node_shapes_and_nomads_500_for_unknown_nodes(
    sim: tuple[NomadSimServer, httpx.AsyncClient],
) -> None:
    srv, http = sim
    node_id = srv.state.register_node("n1", cpu_mhz=3000, memory_mb=2048, meta={"k": "v"})
    stubs = (await http.get("/v1/nodes")).json()
    assert "NodeResources" not in stubs[0] and "Meta" not in stubs[0]
    with_res = (await http.get("/v1/nodes?resources=true")).json()
    assert with_res[0]["NodeResources"]["Cpu"]["CpuShares"] == 3000
    full = (await http.get(f"/v1/node/{node_id}")).json()
    assert full["Meta"] == {"k": "v"} and full["DrainStrategy"] is None
    assert isinstance(full["StatusUpdatedAt"], int)
    drain = await http.post(
        f"/v1/node/{node_id}/drain",
        json={"DrainSpec": {"Deadline": 60_000_000_000, "IgnoreSystemJobs": False}},
    )
    assert drain.status_code == 200 and drain.json()["NodeModifyIndex"] > 0
    unknown = await http.post("/v1/node/nope/drain", json={"DrainSpec": None})
    assert unknown.status_code == 500 and unknown.text == "node not found"
    assert (await http.get("/v1/node/nope")).status_code == 404
    bad = await http.post(f"/v1/node/{node_id}/eligibility", json={"Eligibility": "maybe"})
    assert bad.status_code == 500 and "invalid scheduling eligibility" in bad.text


async def test_bad_blocking_parameters(sim: tuple[NomadSimServer, httpx.AsyncClient]) -> None:
    _, http = sim
    wait = await http.get("/v1/nodes", params={"index": "1", "wait": "forever"})
    assert wait.status_code == 400 and wait.text == "Invalid wait time"
    index = await http.get("/v1/nodes", params={"index": "x"})
    assert index.status_code == 400 and index.text == "Invalid index"


async def test_a_wait_of_zero_blocks_for_the_default_not_at_all(
    sim: tuple[NomadSimServer, httpx.AsyncClient],
) -> None:
    """QueryOptions.TimeToBlock: wait <= 0 is the default 5 minutes, so ?wait=0s holds."""
    srv, http = sim
    first = await http.put("/v1/var/app/x", json={"Items": {"a": "1"}})
    index = first.headers["X-Nomad-Index"]
    query = asyncio.create_task(
        http.get("/v1/vars", params={"prefix": "app/", "index": index, "wait": "0s"})
    )
    for _ in range(200):  # until the server holds it open (it answered early if done)
        if srv.state.listeners or query.done():
            break
        await asyncio.sleep(0.01)
    assert not query.done(), "a wait of 0s answered at once; Nomad holds it for 5 minutes"
    await http.put("/v1/var/app/y", json={"Items": {"a": "2"}})
    answer = await asyncio.wait_for(query, 5)
    assert int(answer.headers["X-Nomad-Index"]) > int(index)
    assert [v["Path"] for v in answer.json()] == ["app/x", "app/y"]


def test_time_to_block_is_nomads() -> None:
    assert time_to_block(0, 60) == 0  # no index: not a blocking query
    assert time_to_block(7, 0) == time_to_block(7, -1) == 300  # the default
    assert time_to_block(7, 600) == 300  # the most a query is held
    assert time_to_block(7, 0.5) == 0.5


QUERY_META = {"x-nomad-index", "x-nomad-knownleader", "x-nomad-lastcontact"}


def nomad_headers(response: httpx.Response) -> set[str]:
    return {k.lower() for k in response.headers if k.lower().startswith("x-nomad-")}


async def test_headers_as_nomads_agent_sets_them(
    sim: tuple[NomadSimServer, httpx.AsyncClient],
) -> None:
    """setMeta on reads (also before a read's 404), setIndex alone on writes, none on errors."""
    srv, http = sim
    put = await http.put("/v1/var/app/x", json={"Items": {"a": "b"}})
    assert nomad_headers(put) == {"x-nomad-index"}
    assert nomad_headers(await http.get("/v1/var/app/x")) == QUERY_META
    assert nomad_headers(await http.get("/v1/vars")) == QUERY_META
    missing = await http.get("/v1/var/app/none")
    assert missing.status_code == 404 and nomad_headers(missing) == QUERY_META
    no_node = await http.get("/v1/node/00000000-0000-0000-0000-000000000000")
    assert no_node.status_code == 404 and nomad_headers(no_node) == QUERY_META
    no_job = await http.get("/v1/job/none")
    assert no_job.status_code == 404 and nomad_headers(no_job) == QUERY_META
    leader = await http.get("/v1/status/leader")
    assert leader.status_code == 200 and nomad_headers(leader) == set()
    node_id = srv.state.register_node("n1")
    drain = await http.post(f"/v1/node/{node_id}/drain", json={"DrainSpec": {"Deadline": 0}})
    assert nomad_headers(drain) == {"x-nomad-index"}
    acquired = await http.put("/v1/var/locks/l?lock-acquire", json={})
    assert nomad_headers(acquired) == {"x-nomad-index"}
    renewed = await http.put("/v1/var/locks/l?lock-renew", json={"Lock": acquired.json()["Lock"]})
    assert nomad_headers(renewed) == set()  # variableLockRenew sets no index
    # A lock operation's conflict: its deferred setIndex comes after the 409 is written.
    held = await http.put("/v1/var/locks/l?lock-acquire", json={})
    assert held.status_code == 409 and nomad_headers(held) == set()
    # The 409 status is written before the body, so Go sniffs the type: text/plain.
    conflict = await http.put("/v1/var/app/x?cas=0", json={"Items": {"a": "c"}})
    assert conflict.status_code == 409 and conflict.headers["content-type"].startswith("text/plain")
    assert conflict.json()["Items"] == {"a": "b"}


async def test_a_delete_of_nothing_is_still_a_raft_write(
    sim: tuple[NomadSimServer, httpx.AsyncClient],
) -> None:
    """svDeleteTxn succeeds on a missing variable, at the index of its raft apply."""
    _, http = sim
    put = await http.put("/v1/var/app/x", json={"Items": {"a": "b"}})
    first = await http.delete("/v1/var/app/none")
    second = await http.delete("/v1/var/app/none?cas=0")
    indexes = [int(r.headers["X-Nomad-Index"]) for r in (put, first, second)]
    assert first.status_code == second.status_code == 204
    assert indexes == sorted(set(indexes)), indexes  # each a new index
    listing = await http.get("/v1/vars")
    assert int(listing.headers["X-Nomad-Index"]) == indexes[0]  # the table did not change


async def test_conflict_bodies_are_shaped_as_nomads(
    sim: tuple[NomadSimServer, httpx.AsyncClient],
) -> None:
    _, http = sim
    # A zero-valued conflict (CAS on a missing variable, a locked one) carries only the
    # metadata: Items and Lock are omitted (omitempty), never null.
    missing = await http.put("/v1/var/app/none?cas=5", json={"Items": {"a": "b"}})
    assert missing.status_code == 409
    assert missing.json() == {
        "Namespace": "default",
        "Path": "app/none",
        "CreateIndex": 0,
        "CreateTime": 0,
        "ModifyIndex": 0,
        "ModifyTime": 0,
    }
    acquired = (await http.put("/v1/var/locks/l?lock-acquire", json={"Items": {"k": "v"}})).json()
    locked = await http.put("/v1/var/locks/l", json={"Items": {"k": "w"}})
    assert locked.status_code == 409 and set(locked.json()) == set(missing.json())
    # A CAS conflict on a locked variable the caller may read shows it, lock included.
    stale = await http.put("/v1/var/locks/l?cas=1", json={"Items": {"k": "w"}})
    assert stale.status_code == 409 and stale.json()["Lock"]["ID"] == acquired["Lock"]["ID"]
    # A namespace in the body wins over ?namespace (Variables.Apply).
    put = await http.put(
        "/v1/var/app/ns?namespace=other", json={"Namespace": "default", "Items": {"a": "b"}}
    )
    assert put.json()["Namespace"] == "default"


async def test_node_allocations_hide_what_the_token_may_not_read() -> None:
    """Node.GetAllocs: node:read is required; allocations of unreadable namespaces are left out."""
    from reconciler.sim.nomad_state import Policy

    clock = ManualClock()
    state = NomadState(clock, random.Random(5), init_seconds=0, alloc_start_seconds=0, acl=True)
    node_id = state.register_node("n1")
    clock.advance(1)
    state.run_job("web", count=1)
    nodes_only = state.add_token(Policy(node="read"))
    async with NomadSimServer(state) as srv, httpx.AsyncClient(base_url=srv.address) as http:
        answer = await http.get(
            f"/v1/node/{node_id}/allocations", headers={"X-Nomad-Token": nodes_only}
        )
        assert answer.status_code == 200 and answer.json() == []
        assert int(answer.headers["X-Nomad-Index"]) > 1  # the allocation's index all the same
        # The agent decodes a write's body before the server authorizes it.
        bad = await http.post(f"/v1/node/{node_id}/drain", content=b"{")
        assert bad.status_code == 400
        denied = await http.post(f"/v1/node/{node_id}/drain", json={})
        assert denied.status_code == 403


async def test_a_job_answers_at_its_own_index(
    sim: tuple[NomadSimServer, httpx.AsyncClient],
) -> None:
    srv, http = sim
    srv.state.register_node("n1")
    job = srv.state.run_job("web", count=1)
    srv.state.run_job("other", count=1)
    answer = await http.get("/v1/job/web")
    assert int(answer.headers["X-Nomad-Index"]) == job.modify_index > 0
    assert answer.json()["ModifyIndex"] == job.modify_index


async def test_node_list_fields_parse_as_go_bools(
    sim: tuple[NomadSimServer, httpx.AsyncClient],
) -> None:
    srv, http = sim
    srv.state.register_node("n1")
    with_os = (await http.get("/v1/nodes", params={"os": "T"})).json()
    assert with_os[0]["Attributes"] == {"os.name": "ubuntu"}
    assert "Attributes" not in (await http.get("/v1/nodes")).json()[0]
    bad = await http.get("/v1/nodes", params={"resources": "yes"})
    assert bad.status_code == 400
    assert bad.text.startswith(
        'Failed to parse node list fields: Failed to parse value of "resources"'
    )
    assert (await http.get("/v1/nodes", params={"resources": "tRuE"})).status_code == 400
    # AllocsRequest returns the same parse error unwrapped: Nomad answers it with a 500.
    allocs = await http.get("/v1/allocations", params={"task_states": "no"})
    assert allocs.status_code == 500 and allocs.text.startswith('Failed to parse value of "task')


async def test_fault_keys_match_by_method_path_and_glob(
    sim: tuple[NomadSimServer, httpx.AsyncClient],
) -> None:
    srv, http = sim
    srv.faults.set("* /v1/node/*/drain", Fault(error_rate=1.0))
    srv.faults.set("GET /v1/nodes", Fault(error_rate=1.0))
    failed = await http.post("/v1/node/x/drain", json={})
    assert failed.status_code == 500 and "fault" in failed.text
    assert (await http.get("/v1/nodes")).status_code == 500
    assert (await http.get("/v1/allocations")).status_code == 200
    srv.faults.set("*", Fault(error_rate=1.0))
    assert (await http.get("/v1/evaluations")).status_code == 500
    srv.faults.set("GET /v1/evaluations", Fault())  # the exact key wins over "*"
    assert (await http.get("/v1/evaluations")).status_code == 200
    assert srv.requests["GET /v1/nodes"] == 1


def test_go_formats() -> None:
    assert [go_duration(s) for s in (15, 60, 90, 5400, 1.5, 0.25)] == [
        "15s",
        "1m0s",
        "1m30s",
        "1h30m0s",
        "1.5s",
        "250ms",
    ]
    assert parse_duration("1h30m") == 5400 and parse_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_duration("5 min")
    assert rfc3339(None) == "0001-01-01T00:00:00Z"
    assert rfc3339(1617192740.5) == "2021-03-31T12:12:20.5Z"
    assert rfc3339(1617192740.5, whole_seconds=True) == "2021-03-31T12:12:20Z"
