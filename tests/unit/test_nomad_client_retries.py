"""Retry decisions of the Nomad client, with scripted answers (httpx.MockTransport).

The cases need an answer lost after Nomad acted on the request, which a real
server cannot be made to do on cue; everything else is tested over loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from reconciler.nomad import CasConflict, NomadClient, NomadSettings, NomadUnavailable

VAR = {"Namespace": "default", "Path": "p/x", "CreateIndex": 3, "ModifyIndex": 9}
ZERO = {"Namespace": "default", "Path": "p/x", "CreateIndex": 0, "ModifyIndex": 0, "Items": None}


def scripted(*answers: httpx.Response) -> tuple[NomadClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue: Iterator[httpx.Response] = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(queue)

    client = NomadClient(
        NomadSettings(address="http://nomad.test:4646", token="tok"),
        attempts=3,
        backoff_max=0.001,
        transport=httpx.MockTransport(handler),
    )
    return client, seen


def lost() -> httpx.Response:
    return httpx.Response(503, text="No cluster leader")


async def test_a_cas_write_whose_first_answer_was_lost_is_recognised() -> None:
    c, seen = scripted(lost(), httpx.Response(409, json=VAR | {"Items": {"a": "1"}}))
    async with c:
        var = await c.put_var("p/x", {"a": "1"}, cas=8)
    assert var.modify_index == 9 and len(seen) == 2
    assert seen[0].headers["X-Nomad-Token"] == "tok"
    assert json.loads(seen[0].content)["Items"] == {"a": "1"}
    assert seen[0].url.params["cas"] == "8"


async def test_a_first_attempt_conflict_is_a_conflict_even_with_our_items() -> None:
    c, _ = scripted(httpx.Response(409, json=VAR | {"Items": {"a": "1"}}))
    async with c:
        with pytest.raises(CasConflict) as exc:
            await c.put_var("p/x", {"a": "1"}, cas=8)
    assert exc.value.current is not None and exc.value.current.modify_index == 9


async def test_a_cas_delete_whose_first_answer_was_lost_is_done() -> None:
    c, seen = scripted(lost(), httpx.Response(409, json=ZERO))
    async with c:
        assert await c.delete_var("p/x", cas=9) == 0
    assert len(seen) == 2


async def test_lock_acquire_is_retried_only_when_nomad_did_not_act() -> None:
    c, seen = scripted(httpx.Response(500, text="raft apply failed"))
    async with c:
        with pytest.raises(NomadUnavailable):
            await c.lock_acquire("locks/l")
    assert len(seen) == 1  # a 500 may have taken the lock: retrying would deadlock on it
    ok = VAR | {"Items": None, "Lock": {"ID": "lk", "TTL": "15s", "LockDelay": "15s"}}
    c, seen = scripted(lost(), httpx.Response(200, json=ok))
    async with c:
        _, lock_id = await c.lock_acquire("locks/l")
    assert lock_id == "lk" and len(seen) == 2
    assert json.loads(seen[0].content)["Lock"] == {"TTL": "15s", "LockDelay": "15s"}
    assert "lock-acquire" in seen[0].url.params


async def test_blocking_reads_send_index_and_wait() -> None:
    c, seen = scripted(httpx.Response(200, json=[], headers={"X-Nomad-Index": "12"}))
    async with c:
        result = await c.list_nodes(index=11, wait=90)
    assert result.index == 12
    params = seen[0].url.params
    assert (params["index"], params["wait"], params["resources"]) == ("11", "90s", "true")
