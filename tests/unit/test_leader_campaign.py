"""The leader's campaign through ``LeaderElector.run``: its pace, what it sends, how it ends.

A scripted fake Nomad answers each lock call as the test says (at once, late, never,
or with an error) on a hand-moved clock; the tests read what was sent when.
Complements test_leader_lease.py (when the lease ends) and the integration tests
against the simulator (tests/integration/test_leader*.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from reconciler import leadership
from reconciler.clock import ManualClock
from reconciler.leadership import LeaderElector, default_identity
from reconciler.nomad.errors import LockHeld, LockLost, NomadUnavailable

PATH = "nomad/jobs/multipass-reconciler/leader"
HANG = "hang"

Outcome = float | str | Exception  # a delay in clock seconds, HANG, or an error to raise


class ScriptedNomad:
    """Lock calls answered from per-call scripts; without a script, at once."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.script: dict[str, list[Outcome]] = {"acquire": [], "renew": [], "release": []}
        self.sent: list[tuple[str, float]] = []
        self.acquire_args: list[dict[str, object]] = []
        self.released: list[str] = []
        self.lock_ids = iter(f"lock-{i}" for i in range(1, 100))
        self.issued = ""

    async def _answer(self, call: str) -> None:
        self.sent.append((call, self.clock.monotonic()))
        script = self.script[call]
        outcome: Outcome = script.pop(0) if script else 0.0
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == HANG:
            await asyncio.Event().wait()
        elif isinstance(outcome, float) and outcome > 0:
            await self.clock.sleep(outcome)

    async def lock_acquire(
        self, path: str, *, ttl: float, lock_delay: float, items: dict[str, str]
    ) -> tuple[object, str]:
        self.acquire_args.append({"path": path, "ttl": ttl, "lock_delay": lock_delay, **items})
        await self._answer("acquire")
        self.issued = next(self.lock_ids)
        return object(), self.issued

    async def lock_renew(self, path: str, lock_id: str) -> object:
        assert (path, lock_id) == (PATH, self.issued), (path, lock_id)
        await self._answer("renew")
        return object()

    async def lock_release(self, path: str, lock_id: str) -> object:
        assert (path, lock_id) == (PATH, self.issued), (path, lock_id)
        await self._answer("release")
        self.released.append(lock_id)
        return object()

    def times(self, call: str) -> list[float]:
        return [t for c, t in self.sent if c == call]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def advance_to(clock: ManualClock, t: float, step: float = 0.25) -> None:
    await settle()
    while clock.monotonic() + step <= t + 1e-9:
        clock.advance(step)
        await settle()


class Replica:
    def __init__(self, *, ttl: float = 15.0, **kw: object) -> None:
        self.clock = ManualClock()
        self.nomad = ScriptedNomad(self.clock)
        self.changes: list[bool] = []
        self.elector = LeaderElector(
            self.nomad,  # type: ignore[arg-type]
            PATH,
            self.clock,
            ttl=ttl,
            identity="replica-a",
            on_change=self.changes.append,
            **kw,  # type: ignore[arg-type]
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self, **run: bool) -> None:
        self.task = asyncio.create_task(self.elector.run(self.stop, **run))

    async def halt(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    r = Replica()
    yield r
    r.stop.set()
    if r.task is not None and not r.task.done():
        await asyncio.wait_for(r.task, 5)


async def test_a_leader_renews_every_third_of_the_ttl(replica: Replica) -> None:
    replica.start()
    await advance_to(replica.clock, 16.0)
    assert replica.nomad.times("acquire") == [0.0]
    assert replica.nomad.times("renew") == [5.0, 10.0, 15.0]
    assert replica.elector.is_leader()
    assert replica.changes == [True]  # told once, not on every renewal


async def test_the_acquire_names_the_lock_its_ttl_delay_and_holder() -> None:
    r = Replica(ttl=12.0, lock_delay=20.0)
    r.start()
    await advance_to(r.clock, 0.5)
    assert r.nomad.acquire_args == [
        {"path": PATH, "ttl": 12.0, "lock_delay": 20.0, "holder": "replica-a"}
    ]
    await r.halt()


async def test_the_lock_delay_defaults_to_fifteen_seconds(replica: Replica) -> None:
    replica.start()
    await advance_to(replica.clock, 0.5)
    assert replica.nomad.acquire_args[0]["ttl"] == 15.0
    assert replica.nomad.acquire_args[0]["lock_delay"] == 15.0


async def test_a_standby_retries_the_acquire_every_third_of_the_ttl(replica: Replica) -> None:
    replica.nomad.script["acquire"] = [LockHeld("held"), LockHeld("held"), LockHeld("held")]
    replica.start()
    await advance_to(replica.clock, 15.5)
    assert replica.nomad.times("acquire") == [0.0, 5.0, 10.0, 15.0]
    assert replica.changes == [True]  # the fourth acquire got it
    assert replica.elector.is_leader()


async def test_a_standby_retries_at_its_own_pace_when_given() -> None:
    r = Replica(retry=2.0)
    r.nomad.script["acquire"] = [LockHeld("held")] * 3
    r.start()
    await advance_to(r.clock, 6.5)
    assert r.nomad.times("acquire") == [0.0, 2.0, 4.0, 6.0]
    await r.halt()


async def test_an_acquire_that_fails_is_tried_again_and_leads_to_nothing(
    replica: Replica,
) -> None:
    replica.nomad.script["acquire"] = [NomadUnavailable("503")]
    replica.start()
    await advance_to(replica.clock, 4.75)
    assert not replica.elector.is_leader()
    assert replica.changes == []
    await advance_to(replica.clock, 5.25)
    assert replica.elector.is_leader()


async def test_a_failed_renewal_is_retried_soon_while_the_lease_lasts(replica: Replica) -> None:
    replica.nomad.script["renew"] = [NomadUnavailable("503"), NomadUnavailable("503")]
    replica.start()
    await advance_to(replica.clock, 7.5)
    # ttl 15: retry_pause is min(1, 15/15) = 1 s after each failure.
    assert replica.nomad.times("renew") == [5.0, 6.0, 7.0]
    assert replica.elector.is_leader()
    await advance_to(replica.clock, 12.5)
    assert replica.nomad.times("renew") == [5.0, 6.0, 7.0, 12.0]  # back to the usual pace


async def test_a_renewal_gets_half_of_what_is_left_of_the_lease(replica: Replica) -> None:
    replica.nomad.script["renew"] = [HANG, HANG, HANG, HANG]
    replica.start()
    await advance_to(replica.clock, 9.9)
    # Lease to 10. At 5: budget (10-5)/2 = 2.5, abandoned at 7.5; retried at 8.5 with
    # (10-8.5)/2 = 0.75, abandoned at 9.25, retried at 10.25 (the lease is gone by then).
    assert replica.nomad.times("renew") == [5.0, 8.5]
    await advance_to(replica.clock, 10.25)
    assert not replica.elector.is_leader()
    assert replica.changes == [True, False]
    await advance_to(replica.clock, 16.0)
    # Without a lease: attempts of at least MIN_ATTEMPT, at the ordinary pace.
    assert leadership.MIN_ATTEMPT == 0.5
    assert replica.nomad.times("renew")[2:] == [9.25 + 1.0, 10.25 + 0.5 + 5.0]


async def test_a_lost_lock_campaigns_again_at_once(replica: Replica) -> None:
    replica.nomad.script["renew"] = [LockLost("lapsed")]
    replica.start()
    await advance_to(replica.clock, 5.5)
    assert replica.nomad.times("acquire") == [0.0, 5.0]
    assert replica.changes == [True, False, True]


async def test_stop_releases_a_held_lock(replica: Replica) -> None:
    replica.start()  # as app.py runs it: release is the default
    await advance_to(replica.clock, 3.0)
    await replica.halt()
    assert replica.nomad.released == ["lock-1"]
    assert not replica.elector.is_leader()
    assert replica.changes == [True, False]


async def test_stop_without_release_walks_away_as_a_crash_would(replica: Replica) -> None:
    replica.start(release=False)
    await advance_to(replica.clock, 3.0)
    await replica.halt()
    assert replica.changes == [True, False]  # told, before anyone asks
    assert replica.nomad.released == []
    assert not replica.elector.is_leader()


async def test_a_lock_whose_lease_ran_out_is_not_released(replica: Replica) -> None:
    replica.nomad.script["renew"] = [HANG] * 10
    replica.start()
    await advance_to(replica.clock, 11.0)
    assert not replica.elector.is_leader()
    await replica.halt()
    assert replica.nomad.released == []  # left to lapse: a release could hand it on early


async def test_stop_is_not_held_up_by_a_hung_renewal(replica: Replica) -> None:
    replica.nomad.script["renew"] = [HANG]
    replica.start()
    await advance_to(replica.clock, 5.5)  # the renewal hangs
    await replica.halt()  # returns, without the clock moving on
    assert replica.nomad.times("renew") == [5.0]


async def test_a_release_that_fails_does_not_fail_the_shutdown(replica: Replica) -> None:
    replica.nomad.script["release"] = [NomadUnavailable("503")]
    replica.start()
    await advance_to(replica.clock, 1.0)
    await replica.halt()
    assert replica.nomad.released == []
    assert not replica.elector.is_leader()


async def test_a_standby_that_never_led_releases_nothing(replica: Replica) -> None:
    replica.nomad.script["acquire"] = [LockHeld("held")] * 5
    replica.start()
    await advance_to(replica.clock, 1.0)
    await replica.halt()
    assert replica.nomad.sent == [("acquire", 0.0)]
    assert replica.changes == []


async def test_a_bug_in_a_lock_call_surfaces(replica: Replica) -> None:
    replica.nomad.script["acquire"] = [RuntimeError("a bug")]
    replica.start()
    await advance_to(replica.clock, 0.5)
    assert replica.task is not None and replica.task.done()
    with pytest.raises(RuntimeError, match="a bug"):
        replica.task.result()


def test_the_identity_names_the_allocation_or_host_and_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import socket

    monkeypatch.setenv("NOMAD_ALLOC_ID", "alloc-123")
    assert default_identity() == f"alloc-123/{os.getpid()}"
    monkeypatch.delenv("NOMAD_ALLOC_ID")
    assert default_identity() == f"{socket.gethostname()}/{os.getpid()}"
    clock = ManualClock()
    elector = LeaderElector(ScriptedNomad(clock), PATH, clock)  # type: ignore[arg-type]
    assert elector.identity == default_identity()
    assert elector.path == PATH


async def test_the_lease_ends_at_its_instant_not_after() -> None:
    r = Replica()
    r.nomad.script["renew"] = [HANG] * 10
    r.start()
    await advance_to(r.clock, 9.75)
    assert r.elector.is_leader()
    await advance_to(r.clock, 10.0)  # acquired at 0: TTL 15 - margin 5
    assert not r.elector.is_leader()
    await r.halt()


async def test_a_leader_with_its_own_retry_still_renews_every_third_of_the_ttl() -> None:
    r = Replica(retry=2.0)
    r.start()
    await advance_to(r.clock, 10.5)
    assert r.nomad.times("renew") == [5.0, 10.0]
    await r.halt()


@pytest.mark.parametrize(("ttl", "pause"), [(7.5, 0.5), (30.0, 1.0)])
async def test_a_failed_renewal_is_retried_after_a_fifteenth_of_the_ttl_at_most_a_second(
    ttl: float, pause: float
) -> None:
    r = Replica(ttl=ttl)
    r.nomad.script["renew"] = [NomadUnavailable("503")]
    r.start()
    first = ttl / 3
    await advance_to(r.clock, first + pause + 0.25, step=1 / 32)  # exact binary steps
    assert r.nomad.times("renew") == [first, first + pause]
    await r.halt()


async def test_the_ttl_and_lock_delay_default_to_fifteen_seconds() -> None:
    clock = ManualClock()
    nomad = ScriptedNomad(clock)
    elector = LeaderElector(nomad, PATH, clock, identity="x")  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(elector.run(stop))
    await advance_to(clock, 5.5)
    assert nomad.acquire_args[0]["ttl"] == 15.0 and nomad.acquire_args[0]["lock_delay"] == 15.0
    assert nomad.times("renew") == [5.0]
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_shutdown_does_not_wait_for_a_release_nomad_never_answers(
    monkeypatch: pytest.MonkeyPatch, replica: Replica
) -> None:
    monkeypatch.setattr(leadership, "RELEASE_WAIT", 0.05)  # real seconds
    replica.nomad.script["release"] = [HANG]
    replica.start()
    await advance_to(replica.clock, 1.0)
    await replica.halt()  # returns once the release wait is over, raising nothing
    assert replica.nomad.times("release") == [1.0]
    assert not replica.elector.is_leader()


async def test_what_the_campaign_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Leadership changes log at INFO, failures at WARNING: both are what a person reads.
    caplog.set_level(logging.INFO, "reconciler.leadership")
    r = Replica()
    r.nomad.script["acquire"] = [NomadUnavailable("503 from nomad"), 0.0, 0.0]
    r.nomad.script["renew"] = [NomadUnavailable("502 bad gateway"), HANG, LockLost("gone")]
    r.start()
    await advance_to(r.clock, 14.5)
    await r.halt()
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "reconciler.leadership"]
    assert messages == [
        f"leader election: acquiring {PATH} failed: 503 from nomad",
        "leadership acquired (replica-a)",  # at 5
        f"leader election: renewing {PATH} failed: 502 bad gateway",  # at 10
        # at 11: the lease left (to 15) halves to a 2 s budget
        f"leader election: renewing {PATH} failed: no answer within 2s",
        f"leader election: the lock on {PATH} lapsed",  # at 14
        "leadership lost (replica-a)",
        "leadership acquired (replica-a)",  # campaigns again at once
        "leadership lost (replica-a)",  # the shutdown
    ]
