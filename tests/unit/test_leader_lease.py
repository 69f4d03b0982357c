"""The leader's lease, counted on its own clock from when each request was SENT.

Nomad counts the lock's TTL from when it received the acquire or renew. The
elector cannot know that moment, only that it came after the request went out;
so its lease must run from the send, never from when the answer came back. A
slow answer that moved the start later would stretch the lease past the moment
Nomad may hand the lock to another replica: two leaders at once.

These tests drive a fake Nomad whose answers arrive when the test says, on a
hand-moved clock; the whole campaign runs through ``LeaderElector.run``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from reconciler.clock import ManualClock
from reconciler.leadership import LeaderElector
from reconciler.nomad.errors import LockHeld, LockLost

PATH = "nomad/jobs/multipass-reconciler/leader"
TTL = 15.0  # lease = TTL - TTL/3 = 10 s from each send; renewals every 5 s


class SlowNomad:
    """Lock calls whose answers take ``delays[call]`` clock seconds (None: never answer).

    Acquires answer at once once their delays are used up; renewals never do.
    """

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.acquire_delays: list[float | None] = []
        self.renew_delays: list[float | None] = []
        self.renew_results: list[str] = []  # "ok" or "lost", per renewal
        self.sent: list[tuple[str, float]] = []  # (call, clock.monotonic() when sent)
        self.released: list[str] = []
        self.held_by_other = False

    async def _answer(self, delays: list[float | None], default: float | None) -> None:
        delay = delays.pop(0) if delays else default
        if delay is None:
            await asyncio.Event().wait()  # lost in the network: never answers
        elif delay > 0:
            await self.clock.sleep(delay)

    async def lock_acquire(
        self, path: str, *, ttl: float, lock_delay: float, items: dict[str, str]
    ) -> tuple[object, str]:
        self.sent.append(("acquire", self.clock.monotonic()))
        if self.held_by_other:
            raise LockHeld(f"{path}: held")
        await self._answer(self.acquire_delays, 0.0)
        return object(), "lock-1"

    async def lock_renew(self, path: str, lock_id: str) -> object:
        self.sent.append(("renew", self.clock.monotonic()))
        await self._answer(self.renew_delays, None)
        if self.renew_results and self.renew_results.pop(0) == "lost":
            raise LockLost(f"{path}: lock lapsed")
        return object()

    async def lock_release(self, path: str, lock_id: str) -> object:
        self.released.append(lock_id)
        return object()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def advance_to(clock: ManualClock, t: float, step: float = 0.25) -> None:
    """Move the clock to ``t`` in small steps, letting the elector react after each."""
    await settle()
    while clock.monotonic() + step <= t + 1e-9:
        clock.advance(step)
        await settle()
    if clock.monotonic() < t:
        clock.advance(t - clock.monotonic())
        await settle()


class Campaign:
    """One elector against a SlowNomad; ``start()`` once the answers are set up."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.nomad = SlowNomad(self.clock)
        self.elector = LeaderElector(
            self.nomad,  # type: ignore[arg-type]
            PATH,
            self.clock,
            ttl=TTL,
            lock_delay=TTL,
            identity="a",
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self.stop))


@pytest.fixture
async def campaign() -> AsyncIterator[Campaign]:
    c = Campaign()
    yield c
    c.stop.set()
    if c.task is not None:
        await asyncio.wait_for(c.task, 5)


async def test_a_slow_renewal_does_not_stretch_the_lease(
    campaign: Campaign,
) -> None:
    clock, nomad, elector = campaign.clock, campaign.nomad, campaign.elector
    # Renewal 1 (sent at 5) is answered 2 s late, at 7; no later one is answered.
    nomad.renew_delays = [2.0]
    campaign.start()
    await advance_to(clock, 5.5)
    assert elector.is_leader()
    assert [c for c, _ in nomad.sent] == ["acquire", "renew"]
    renew_sent = nomad.sent[1][1]
    assert renew_sent == pytest.approx(5.0)
    await advance_to(clock, 14.75)
    assert elector.is_leader()  # 10 s from the renewal's send: still within the lease
    await advance_to(clock, 15.25)
    # Counted from the answer (7) the lease would last to 17: past where it must end.
    assert not elector.is_leader(), "the lease ran from the answer, not from the send"


async def test_a_slow_acquire_counts_its_lease_from_the_send(
    campaign: Campaign,
) -> None:
    clock, nomad, elector = campaign.clock, campaign.nomad, campaign.elector
    nomad.acquire_delays = [3.0]  # sent at 0, answered at 3
    campaign.start()
    await advance_to(clock, 3.25)
    assert elector.is_leader()
    await advance_to(clock, 9.75)
    assert elector.is_leader()
    await advance_to(clock, 10.25)
    assert not elector.is_leader(), "the lease ran from the acquire's answer, not its send"


async def test_the_lease_ends_before_nomad_could_give_the_lock_away(
    campaign: Campaign,
) -> None:
    """Whatever the answers do, the lease never outlives the TTL Nomad counts.

    Nomad received each request no earlier than it was sent, so its TTL runs at
    least from the send: the lease must end by the last send + TTL - margin.
    """
    clock, nomad, elector = campaign.clock, campaign.nomad, campaign.elector
    nomad.renew_delays = [0.5, 2.0, 1.0]
    last_send = 0.0
    campaign.start()
    for tick in range(1, 161):
        await advance_to(clock, tick * 0.25, step=0.25)
        sends = [t for c, t in nomad.sent if c in ("acquire", "renew")]
        if elector.is_leader():
            # The request that gave the lease was sent no later than the last send.
            last_send = max(sends)
            assert clock.monotonic() < last_send + TTL - TTL / 3 + 1e-9
    assert not elector.is_leader()  # the last renewal never came back: the lease ended


async def test_a_lost_lock_ends_leadership_at_once_and_is_not_released(
    campaign: Campaign,
) -> None:
    clock, nomad, elector = campaign.clock, campaign.nomad, campaign.elector
    nomad.renew_delays, nomad.renew_results = [0.0], ["lost"]
    campaign.start()
    await advance_to(clock, 4.75)
    assert elector.is_leader()
    nomad.held_by_other = True  # another replica took the lapsed lock
    await advance_to(clock, 5.25)  # the renewal at 5 is refused: the lock lapsed
    assert not elector.is_leader()
    assert [c for c, _ in nomad.sent] == ["acquire", "renew", "acquire"]  # campaigns at once
    await advance_to(clock, 5.25 + TTL / 3)
    assert [c for c, _ in nomad.sent][-1] == "acquire"  # and keeps campaigning
    assert nomad.released == []  # a lapsed lock is never released
