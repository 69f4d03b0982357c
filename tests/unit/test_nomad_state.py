"""The Nomad simulator's state: semantics the reconciler relies on, driven by a ManualClock."""

from __future__ import annotations

import random

import pytest

from reconciler.clock import ManualClock
from reconciler.sim.nomad_state import (
    Change,
    NomadState,
    Policy,
    SimConflict,
    SimError,
)


def make(**kw: float) -> tuple[NomadState, ManualClock]:
    clock = ManualClock()
    opts = {
        "init_seconds": 5.0,
        "heartbeat_timeout": 30.0,
        "migrate_seconds": 10.0,
        "alloc_start_seconds": 1.0,
    } | kw
    return NomadState(clock, random.Random(7), **opts), clock  # type: ignore[arg-type]


def advance(state: NomadState, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    state.tick()


def ready_node(state: NomadState, clock: ManualClock, name: str, **kw: object) -> str:
    node_id = state.register_node(name, **kw)  # type: ignore[arg-type]
    advance(state, clock, state.init_seconds)
    assert state.nodes[node_id].status == "ready"
    return node_id


def live_on(state: NomadState, node_id: str) -> list[str]:
    return sorted(a.name for a in state.allocs.values() if a.node_id == node_id and a.live)


# ---------------------------------------------------------------- indexes


def test_every_write_takes_a_new_index_and_moves_only_its_tables_index() -> None:
    state, _ = make()
    heard: list[Change] = []
    state.subscribe(heard.append)
    before = dict(state.table_index)
    v1 = state.put_var("default", "a/b", {"k": "1"})
    assert v1.create_index == v1.modify_index == state.index
    assert state.table_index["variables"] == v1.modify_index
    assert state.table_index["nodes"] == before["nodes"]
    first = v1.modify_index
    v2 = state.put_var("default", "a/b", {"k": "2"})
    assert v2.modify_index == first + 1 and v2.create_index == first
    node_id = state.register_node("n1")
    assert state.table_index["nodes"] == state.nodes[node_id].modify_index == state.index
    assert [(c.table, c.key) for c in heard] == [
        ("variables", "a/b"),
        ("variables", "a/b"),
        ("nodes", node_id),
    ]


def test_ids_are_reproducible_from_the_seed() -> None:
    ids = []
    for _ in range(2):
        state, clock = make()
        n = ready_node(state, clock, "n1")
        state.run_job("web", count=2)
        ids.append((n, sorted(state.allocs)))
    assert ids[0] == ids[1]


# ---------------------------------------------------------------- variables


def test_cas_zero_creates_only_and_a_lost_race_reports_the_current_variable() -> None:
    state, _ = make()
    created = state.put_var("default", "p/x", {"a": "1"}, cas=0)
    with pytest.raises(SimConflict) as exc:
        state.put_var("default", "p/x", {"a": "2"}, cas=0)
    assert exc.value.variable.modify_index == created.modify_index
    assert exc.value.variable.items == {"a": "1"}
    with pytest.raises(SimConflict):
        state.put_var("default", "p/x", {"a": "2"}, cas=created.modify_index - 1)
    updated = state.put_var("default", "p/x", {"a": "2"}, cas=created.modify_index)
    assert updated.items == {"a": "2"}


def test_cas_on_a_missing_variable_conflicts_with_a_zero_placeholder() -> None:
    state, _ = make()
    with pytest.raises(SimConflict) as exc:
        state.put_var("default", "p/none", {"a": "1"}, cas=5)
    assert exc.value.variable.is_zero
    assert ("default", "p/none") not in state.variables


def test_delete_with_cas() -> None:
    state, _ = make()
    v = state.put_var("default", "p/x", {"a": "1"})
    with pytest.raises(SimConflict):
        state.delete_var("default", "p/x", cas=v.modify_index + 1)
    assert ("default", "p/x") in state.variables
    before = state.table_index["variables"]
    state.delete_var("default", "p/x", cas=v.modify_index)
    assert ("default", "p/x") not in state.variables
    assert state.table_index["variables"] > before
    state.delete_var("default", "p/x")  # a missing variable is fine


def test_prefix_listing_and_namespaces() -> None:
    state, _ = make()
    state.put_var("default", "app/pools/a", {"k": "v"})
    state.put_var("default", "app/pools/b", {"k": "v"})
    state.put_var("default", "app/status/a", {"k": "v"})
    state.put_var("other", "app/pools/c", {"k": "v"})
    assert [v.path for v in state.list_vars("default", "app/pools/")] == [
        "app/pools/a",
        "app/pools/b",
    ]
    assert len(state.list_vars("*", "app/pools/")) == 3


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("nomad/jobs/multipass-reconciler/pools/a", True),
        ("a/b_c~d-e", True),
        ("nomad", False),
        ("nomad/other", False),
        ("has space", False),
        ("x" * 129, False),
    ],
)
def test_variable_paths_follow_nomads_rules(path: str, ok: bool) -> None:
    state, _ = make()
    if ok:
        state.put_var("default", path, {"k": "v"})
    else:
        with pytest.raises(SimError) as exc:
            state.put_var("default", path, {"k": "v"})
        assert exc.value.status == 400


def test_empty_items_are_rejected() -> None:
    state, _ = make()
    with pytest.raises(SimError) as exc:
        state.put_var("default", "p/x", {})
    assert exc.value.status == 400


# ---------------------------------------------------------------- locks


def test_a_held_lock_conflicts_and_blocks_plain_writes() -> None:
    state, _ = make()
    var = state.lock_acquire("default", "locks/l", ttl=10, lock_delay=5)
    assert var.lock is not None
    with pytest.raises(SimConflict):
        state.lock_acquire("default", "locks/l", ttl=10, lock_delay=5)
    with pytest.raises(SimConflict):
        state.put_var("default", "locks/l", {"k": "v"})
    with pytest.raises(SimConflict):
        state.delete_var("default", "locks/l")
    # The holder may write with its lock ID.
    state.put_var("default", "locks/l", {"k": "v"}, lock_id=var.lock.id)


def test_an_unrenewed_lock_lapses_after_twice_its_ttl_then_waits_its_lock_delay() -> None:
    state, clock = make()
    var = state.lock_acquire("default", "locks/l", ttl=10, lock_delay=5)
    assert var.lock is not None
    lock_id = var.lock.id
    advance(state, clock, 19)
    state.lock_renew("default", "locks/l", lock_id)  # in time: good for 20 s more
    advance(state, clock, 19)
    assert var.lock is not None and not var.lock.lapsed
    advance(state, clock, 2)  # 21 s since the renewal
    assert var.lock is not None and var.lock.lapsed
    with pytest.raises(SimError) as renew:
        state.lock_renew("default", "locks/l", lock_id)
    assert renew.value.status == 409
    with pytest.raises(SimConflict):
        state.lock_acquire("default", "locks/l", ttl=10, lock_delay=5)  # lock-delay
    advance(state, clock, 5)
    assert var.lock is None
    again = state.lock_acquire("default", "locks/l", ttl=10, lock_delay=5)
    assert again.lock is not None and again.lock.id != lock_id


def test_release_frees_at_once_and_only_for_the_holder() -> None:
    state, _ = make()
    var = state.lock_acquire("default", "locks/l", ttl=10, lock_delay=60)
    assert var.lock is not None
    with pytest.raises(SimConflict):
        state.lock_release("default", "locks/l", "someone-else")
    state.lock_release("default", "locks/l", var.lock.id)
    assert state.variables[("default", "locks/l")].lock is None
    state.lock_acquire("default", "locks/l", ttl=10, lock_delay=60)
    with pytest.raises(SimError) as exc:
        state.lock_release("default", "locks/none", "x")
    assert exc.value.status == 500  # Nomad's state store error, as Nomad answers it


def test_lock_ttl_bounds() -> None:
    state, _ = make()
    with pytest.raises(SimError):
        state.lock_acquire("default", "locks/l", ttl=5, lock_delay=5)


# ---------------------------------------------------------------- nodes


def test_a_node_is_initializing_then_ready() -> None:
    state, clock = make()
    node_id = state.register_node("n1", datacenter="dc2", node_class="c", meta={"k": "v"})
    node = state.nodes[node_id]
    assert node.status == "initializing"
    advance(state, clock, 4.9)
    assert node.status == "initializing"
    advance(state, clock, 0.1)
    assert node.status == "ready"
    assert node.status_updated_at == clock.now()


def test_a_lost_node_goes_down_after_the_heartbeat_timeout_and_its_work_moves() -> None:
    state, clock = make()
    a = ready_node(state, clock, "a")
    b = ready_node(state, clock, "b")
    state.run_job("web", count=2, cpu_mhz=1500, memory_mb=1000)
    on_a = live_on(state, a)
    assert on_a  # bin-packing fills the first node
    state.node_lost("a")
    advance(state, clock, 29)
    assert state.nodes[a].status == "ready"
    advance(state, clock, 1)
    assert state.nodes[a].status == "down"
    lost = [x for x in state.allocs.values() if x.node_id == a]
    assert lost and all(x.client_status == "lost" and x.desired_status == "stop" for x in lost)
    assert sorted(live_on(state, b)) == ["web.web[0]", "web.web[1]"]


def test_purge_removes_the_node() -> None:
    state, clock = make()
    a = ready_node(state, clock, "a")
    state.purge_node(a)
    assert a not in state.nodes
    with pytest.raises(SimError) as exc:
        state.purge_node(a)
    assert (exc.value.status, exc.value.message) == (500, "node not found")


def test_eligibility() -> None:
    state, clock = make()
    a = ready_node(state, clock, "a")
    state.set_eligibility(a, False)
    assert state.nodes[a].eligibility == "ineligible"
    state.run_job("web", count=1)
    assert not live_on(state, a)
    state.set_eligibility(a, True)
    assert live_on(state, a) == ["web.web[0]"]
    state.update_drain(a, 60)
    with pytest.raises(SimError, match="while it is draining"):
        state.set_eligibility(a, True)


# ---------------------------------------------------------------- drains


def test_a_drain_migrates_one_alloc_per_job_at_a_time_and_records_last_drain() -> None:
    state, clock = make()
    a = ready_node(state, clock, "a", cpu_mhz=8000, memory_mb=8000)
    state.run_job("web", count=2, cpu_mhz=1000, memory_mb=500)
    state.run_job("api", count=1, cpu_mhz=1000, memory_mb=500)
    b = ready_node(state, clock, "b", cpu_mhz=8000, memory_mb=8000)
    advance(state, clock, 1)
    assert len(live_on(state, a)) == 3
    meta = {"multipass-reconciler.owner": "multipass-reconciler"}
    state.update_drain(a, 600, meta=meta)
    node = state.nodes[a]
    assert node.eligibility == "ineligible" and node.drain is not None
    assert node.last_drain is not None and node.last_drain.status == "draining"
    # One of web and the one api are migrating; their replacements are on b.
    migrating = sorted(x.name for x in state.allocs.values() if x.desired_status == "stop")
    assert migrating == ["api.api[0]", "web.web[0]"]
    assert live_on(state, b) == ["api.api[0]", "web.web[0]"]
    advance(state, clock, 9)
    assert node.drain is not None
    advance(state, clock, 1)  # the first migrations finish; web's second one starts
    assert live_on(state, a) == []
    assert node.drain is not None
    advance(state, clock, 10)
    assert node.drain is None
    assert node.last_drain.status == "complete"
    assert node.last_drain.meta == meta
    assert node.last_drain.started_at == clock.now() - 20
    assert node.eligibility == "ineligible"  # Nomad leaves a drained node ineligible
    assert live_on(state, b) == ["api.api[0]", "web.web[0]", "web.web[1]"]


def test_the_deadline_stops_what_is_left() -> None:
    state, clock = make()
    a = ready_node(state, clock, "a")
    state.run_job("batch", count=1, type="batch")  # runs forever: the drain waits for it
    state.update_drain(a, 30)
    advance(state, clock, 29)
    assert state.nodes[a].drain is not None
    advance(state, clock, 1)
    node = state.nodes[a]
    assert node.drain is None and node.last_drain is not None
    assert node.last_drain.status == "complete"
    assert not live_on(state, a)


def test_batch_allocations_are_waited_for() -> None:
    state, clock = make()
    a = ready_node(state, clock, "a")
    state.run_job("report", count=1, type="batch", run_for=50)
    advance(state, clock, 1)
    state.update_drain(a, 0)  # no deadline
    advance(state, clock, 40)
    assert state.nodes[a].drain is not None
    advance(state, clock, 11)
    assert state.nodes[a].drain is None


def test_system_allocations_go_last_or_stay_when_ignored() -> None:
    for ignore in (False, True):
        state, clock = make()
        a = ready_node(state, clock, "a")
        ready_node(state, clock, "b")
        state.run_job("logs", type="system", cpu_mhz=100, memory_mb=64)
        state.run_job("web", count=1, cpu_mhz=100, memory_mb=64)
        web_on_a = any(x.node_id == a and x.job_id == "web" for x in state.allocs.values())
        state.update_drain(a, 600, ignore_system_jobs=ignore)
        if web_on_a:
            assert "logs.logs[0]" in live_on(state, a)  # not while service work migrates
            advance(state, clock, 10)
        assert state.nodes[a].drain is None
        assert ("logs.logs[0]" in live_on(state, a)) is ignore


def test_force_drain_and_cancel() -> None:
    state, clock = make()
    a = ready_node(state, clock, "a")
    state.run_job("web", count=1)
    state.update_drain(a, -1)  # force: at once
    assert state.nodes[a].drain is None and not live_on(state, a)

    b = ready_node(state, clock, "b")
    state.update_drain(b, 600, meta={"why": "test"})
    state.update_drain(b, None, mark_eligible=True)
    node = state.nodes[b]
    assert node.drain is None and node.eligibility == "eligible"
    assert node.last_drain is not None and node.last_drain.status == "canceled"
    assert node.last_drain.meta == {"why": "test"}


def test_a_drain_on_a_missing_node_is_nomads_500() -> None:
    state, _ = make()
    with pytest.raises(SimError) as exc:
        state.update_drain("no-such-node", 60)
    assert (exc.value.status, exc.value.message) == (500, "node not found")


# ---------------------------------------------------------------- scheduling


def test_what_does_not_fit_becomes_a_blocked_eval_and_is_placed_when_room_appears() -> None:
    state, clock = make()
    ready_node(state, clock, "a", cpu_mhz=2000, memory_mb=2048, node_class="small")
    state.run_job("web", count=3, cpu_mhz=1000, memory_mb=256)
    blocked = state.list_evaluations(status="blocked")
    assert len(blocked) == 1
    ev = blocked[0]
    assert ev.queued_allocations == {"web": 1}
    metric = ev.failed_tg_allocs["web"]
    assert metric.dimension_exhausted == {"cpu": 1}
    assert metric.resources_exhausted == {"web": {"CPU": 1000, "MemoryMB": 0}}
    assert metric.nodes_available == {"dc1": 1}
    assert ev.class_eligibility == {"small": True}
    ready_node(state, clock, "b", cpu_mhz=2000, memory_mb=2048)
    assert state.list_evaluations(status="blocked") == []
    assert ev.status == "complete"
    assert sum(1 for x in state.allocs.values() if x.live) == 3


def test_bin_packing_and_constraints() -> None:
    state, clock = make()
    a = ready_node(state, clock, "a", cpu_mhz=4000, memory_mb=4096)
    b = ready_node(state, clock, "b", cpu_mhz=4000, memory_mb=4096, node_class="gpu")
    c = ready_node(state, clock, "c", cpu_mhz=4000, memory_mb=4096, datacenter="dc2")
    state.run_job("web", count=2, cpu_mhz=1000, memory_mb=512, datacenters=["dc1"])
    assert len(live_on(state, a)) == 2 and not live_on(state, c)  # packed, dc1 only
    state.run_job("ml", count=1, node_class="gpu")
    assert live_on(state, b) == ["ml.ml[0]"]
    cpu, mem = state.allocated(a)
    assert (cpu, mem) == (2000, 1024)


def test_scale_down_and_stop() -> None:
    state, clock = make()
    ready_node(state, clock, "a")
    state.run_job("web", count=3)
    state.run_job("web", count=1)
    assert sorted(x.name for x in state.allocs.values() if x.live) == ["web.web[0]"]
    state.stop_job("web")
    assert not any(x.live for x in state.allocs.values())


def test_alloc_lifecycle_pending_then_running() -> None:
    state, clock = make()
    ready_node(state, clock, "a")
    state.run_job("web", count=1)
    [alloc] = state.allocs.values()
    assert alloc.client_status == "pending"
    advance(state, clock, 1)
    assert alloc.client_status == "running"


# ---------------------------------------------------------------- ACL


def test_acl_policies() -> None:
    state, _ = make(acl=True)  # type: ignore[arg-type]
    with pytest.raises(SimError) as unknown:
        state.authorize("nope")
    assert unknown.value.status == 403
    assert state.authorize(None).can_var("x", "read") is False  # anonymous: nothing
    policy = Policy(
        variables={
            "app/*": {"read", "list"},
            "app/pools/*": {"read", "write"},
            "app/secret": {"deny"},
        },
        node="read",
    )
    secret = state.add_token(policy)
    got = state.authorize(secret)
    assert got.can_var("app/status/a", "read") and not got.can_var("app/status/a", "write")
    assert got.can_var("app/pools/a", "write")
    assert not got.can_var("app/pools/a", "list")  # the most specific rule decides
    assert not got.can_var("app/secret", "read")
    assert got.can_node(write=False) and not got.can_node(write=True)
    assert state.authorize(state.add_token(Policy(management=True))).can_node(write=True)
