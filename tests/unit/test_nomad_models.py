"""Parsing Nomad's JSON: tolerant of extra fields, strict and specific about broken ones."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.nomad.errors import ProtocolError
from reconciler.nomad.models import (
    format_go_duration,
    parse_allocation,
    parse_evaluation,
    parse_go_duration,
    parse_node,
    parse_variable,
    rfc3339,
)

NODE: dict[str, Any] = {
    "ID": "f7476465-4d6e-c0de-26d0-e383c49be941",
    "Name": "web-bcdfg-0",
    "Datacenter": "dc1",
    "NodeClass": "",
    "NodePool": "default",
    "Status": "ready",
    "SchedulingEligibility": "ineligible",
    "Drain": False,
    "LastDrain": {
        "StartedAt": "2021-03-31T12:12:20Z",
        "UpdatedAt": "2021-03-31T12:13:20Z",
        "Status": "complete",
        "AccessorID": "4e1b7ce1",
        "Meta": {"message": "node maintenance"},
    },
    "NodeResources": {"Cpu": {"CpuShares": 32000}, "Memory": {"MemoryMB": 15803}},
    "ReservedResources": {"Cpu": {"CpuShares": 1000}, "Memory": {"MemoryMB": 803}},
    "Drivers": {"docker": {"Detected": True}},
    "SomethingNewInNomad2": {"x": 1},
    "CreateIndex": 6,
    "ModifyIndex": 2526,
}


def test_a_node_stub() -> None:
    n = parse_node("GET /v1/nodes", NODE)
    assert (n.name, n.status, n.eligible, n.drain) == ("web-bcdfg-0", "ready", False, False)
    assert (n.cpu_mhz, n.memory_mb) == (31000, 15000)
    assert (n.cpu_total_mhz, n.reserved_memory_mb) == (32000, 803)
    assert n.last_drain is not None and n.last_drain.status == "complete"
    assert n.last_drain.started_at == 1617192740.0
    assert dict(n.last_drain.meta) == {"message": "node maintenance"}
    assert n.drain_deadline_at is None and n.status_updated_at is None


def test_a_full_node_with_a_drain_strategy() -> None:
    full = NODE | {
        "Meta": {"multipass-reconciler.pool": "web"},
        "StatusUpdatedAt": 1566814982,
        "DrainStrategy": {
            "Deadline": 3_600_000_000_000,
            "IgnoreSystemJobs": True,
            "ForceDeadline": "2021-03-31T13:12:20.123456789Z",
            "StartedAt": "2021-03-31T12:12:20.5Z",
        },
    }
    del full["Drain"]
    n = parse_node("GET /v1/node/x", full)
    assert n.drain and dict(n.meta) == {"multipass-reconciler.pool": "web"}
    assert n.drain_strategy is not None and n.drain_strategy.deadline == 3600
    assert n.drain_deadline_at == pytest.approx(1617196340.123456)
    assert n.status_updated_at == 1566814982.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ID": None}, "field ID should be a str, got null"),
        ({"Status": 3}, "field Status should be a str, got int"),
        ({"LastDrain": {"Meta": {"k": 1}}}, r"LastDrain.Meta\['k'\] should be a string"),
        ({"NodeResources": {"Cpu": {"CpuShares": "lots"}}}, "NodeResources.Cpu.CpuShares"),
        ({"LastDrain": {"StartedAt": "yesterday"}}, "LastDrain.StartedAt"),
    ],
)
def test_broken_fields_name_endpoint_and_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as exc:
        parse_node("GET /v1/nodes", NODE | change)
    assert str(exc.value).startswith("GET /v1/nodes: ")


def test_a_missing_required_field() -> None:
    broken = dict(NODE)
    del broken["Name"]
    with pytest.raises(ProtocolError, match="field Name is missing"):
        parse_node("GET /v1/nodes", broken)
    with pytest.raises(ProtocolError, match="expected a JSON object"):
        parse_node("GET /v1/nodes", ["not", "an", "object"])


def test_a_variable_with_a_lock() -> None:
    v = parse_variable(
        "PUT /v1/var/x",
        {
            "Namespace": "prod",
            "Path": "example/first",
            "CreateIndex": 15,
            "ModifyIndex": 16,
            "CreateTime": 1694552155379696000,
            "Items": {"user": "me"},
            "Lock": {"TTL": "15s", "LockDelay": "1m0s", "ID": "670c7248"},
        },
    )
    assert v.lock_id == "670c7248" and v.lock is not None
    assert (v.lock.ttl, v.lock.lock_delay) == (15.0, 60.0)
    assert v.create_time == pytest.approx(1694552155.379696)
    with pytest.raises(ProtocolError, match=r"Items\['n'\] should be a string"):
        parse_variable("GET /v1/var/x", {"Path": "x", "Items": {"n": 1}})


def test_allocations_from_a_list_stub_and_a_full_allocation() -> None:
    resources = {"Tasks": {"web": {"Cpu": {"CpuShares": 500}, "Memory": {"MemoryMB": 256}}}}
    stub = {
        "ID": "a1",
        "NodeID": "n1",
        "JobID": "web",
        "JobType": "system",
        "TaskGroup": "web",
        "ClientStatus": "running",
        "DesiredStatus": "run",
        "AllocatedResources": resources,
    }
    a = parse_allocation("GET /v1/allocations", stub)
    assert (a.job_type, a.cpu_mhz, a.memory_mb, a.is_live) == ("system", 500, 256, True)
    full = {k: v for k, v in stub.items() if k != "JobType"} | {"Job": {"Type": "batch"}}
    assert parse_allocation("GET /v1/node/n1/allocations", full).job_type == "batch"


def test_a_blocked_evaluation() -> None:
    ev = parse_evaluation(
        "GET /v1/evaluations",
        {
            "ID": "e1",
            "Status": "blocked",
            "JobID": "big",
            "ClassEligibility": {"small": True},
            "QueuedAllocations": {"big": 3},
            "FailedTGAllocs": {
                "big": {
                    "NodePool": "gpu",
                    "NodesAvailable": {"dc1": 2, "dc2": 1},
                    "DimensionExhausted": {"memory": 2},
                    "ResourcesExhausted": {"task": {"CPU": 0, "MemoryMB": 2048}},
                    "CoalescedFailures": 2,
                }
            },
        },
    )
    assert ev.queued == 3 and ev.node_pool == "gpu" and ev.datacenters == ("dc1", "dc2")
    assert ev.asked().memory_mb == 2048


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("1m30s", 90), ("1h30m", 5400), ("250ms", 0.25), ("1.5s", 1.5), ("0", 0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)
    assert parse_go_duration(format_go_duration(seconds)) == pytest.approx(seconds)


def test_bad_durations_and_times() -> None:
    for text in ("", "5", "m5", "5 minutes"):
        with pytest.raises(ValueError):
            parse_go_duration(text)
    assert rfc3339("w", "0001-01-01T00:00:00Z", "T") is None
    assert rfc3339("w", "2021-03-31T12:12:20+02:00", "T") == 1617185540.0
