"""Leader election on a Nomad Variable lock (`<prefix>/leader`).

Several replicas of `reconciler run` may be up; only the holder of the lock
reconciles. The holder renews every ``ttl / 3``; the others retry the
acquire every ``retry`` seconds and get the lock once it is released (at once)
or has lapsed (Nomad then keeps it for ``lock_delay`` more, so a leader that
was only slow cannot be overlapped by the next one).

Safety does not depend on the renew calls returning: ``is_leader()`` is a lease
kept locally, valid until the start of the last successful acquire or renew
plus ``ttl`` minus a margin of ``ttl / 3``. A request starts before Nomad
receives it, so the lease always ends before Nomad could let the lock go. The
controller checks ``is_leader()`` before every action; a leader cut off from
Nomad stops acting by its own clock, whatever the network does. The lease is
measured on the monotonic clock: a wall-clock step back (NTP, an operator)
must not stretch it past the moment Nomad gives the lock away.

Shutdown: ``run`` releases the lock only when its own ``stop`` is set; the
caller sets it after the controller has stopped acting (see ``app.run_command``),
so a successor never leads while this replica still has calls in flight.

Liveness: one renewal attempt may take at most half of what is left of the
lease (by the elector's clock); a lost one is abandoned and tried again after
``retry_pause``, so a single dropped request does not cost the leadership.

A lock whose lease ran out is never released, only left to lapse: Nomad's
lock-delay timer, when it fires, strips whatever lock the variable holds by
then, so a release landing inside the delay would let a successor acquire a
lock that Nomad then takes away from under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from reconciler.clock import Clock
from reconciler.errors import ReconcilerError
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import LockHeld, LockLost

log = logging.getLogger(__name__)
T = TypeVar("T")

RELEASE_WAIT = 5.0  # real seconds a shutdown waits for Nomad to confirm the release
MIN_ATTEMPT = 0.5  # clock seconds a renewal gets at least, even with the lease gone


def default_identity() -> str:
    """Who holds the lock, for people reading the variable: the allocation or the host, and pid."""
    where = os.environ.get("NOMAD_ALLOC_ID") or socket.gethostname()
    return f"{where}/{os.getpid()}"


class LeaderElector:
    def __init__(
        self,
        nomad: NomadClient,
        path: str,
        clock: Clock,
        *,
        ttl: float = 15.0,
        lock_delay: float = 15.0,
        retry: float | None = None,
        identity: str | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.nomad = nomad
        self.path = path
        self.clock = clock
        self.ttl = ttl
        self.lock_delay = lock_delay
        self.renew_every = ttl / 3
        self.margin = ttl / 3
        self.retry = retry if retry is not None else ttl / 3
        self.retry_pause = min(1.0, ttl / 15)  # after a failed renewal, while the lease lasts
        self.identity = identity or default_identity()
        self.on_change = on_change
        self._lock_id: str | None = None
        self._lease_until = 0.0  # on clock.monotonic()
        self._was_leader = False

    def is_leader(self) -> bool:
        """True while the lease holds; checked before every dispatch of an action."""
        leader = self._lock_id is not None and self.clock.monotonic() < self._lease_until
        self._note(leader)
        return leader

    def _note(self, leader: bool) -> None:
        if leader != self._was_leader:
            self._was_leader = leader
            # A change of leader is the election working, not a problem (the lapse or a
            # failed renewal that causes a loss is logged as a warning where it happens).
            log.info("leadership %s (%s)", "acquired" if leader else "lost", self.identity)
            if self.on_change is not None:
                self.on_change(leader)

    async def run(self, stop: asyncio.Event, *, release: bool = True) -> None:
        """Campaign, lead and renew until ``stop``; then release the lock if held.

        ``release=False`` walks away without releasing, as a crash would (tests).
        """
        try:
            while not stop.is_set():
                if self._lock_id is None:
                    await _unless_stopped(self._try_acquire(), stop)
                    wait = self.renew_every if self._lock_id else self.retry
                else:
                    # A renew that hangs (a partition) must not hold up shutdown.
                    renewed = await _unless_stopped(self._renew(), stop)
                    wait = self._after_renewal(bool(renewed))
                await _sleep_or_stop(self.clock, wait, stop)
        finally:
            if release:
                await self._release()
            else:
                self._lock_id = None
                self._note(False)

    async def _try_acquire(self) -> None:
        started = self.clock.monotonic()
        try:
            _, lock_id = await self.nomad.lock_acquire(
                self.path,
                ttl=self.ttl,
                lock_delay=self.lock_delay,
                items={"holder": self.identity},
            )
        except LockHeld:
            return  # someone else leads (or the lock is in its delay): try again later
        except ReconcilerError as exc:
            log.warning("leader election: acquiring %s failed: %s", self.path, exc)
            return
        self._lock_id = lock_id
        self._lease_until = started + self.ttl - self.margin
        self.is_leader()

    def _after_renewal(self, renewed: bool) -> float:
        """Clock seconds until the next step of the campaign."""
        if renewed:
            return self.renew_every
        if self._lock_id is None:
            return 0.0  # the lock is gone: campaign again at once
        # Failed: retry soon while the lease lasts; without it, at the ordinary pace.
        return self.retry_pause if self.is_leader() else self.renew_every

    def _attempt_budget(self) -> float:
        """Clock seconds one renewal may take: half the lease left, so a retry still fits."""
        return max(MIN_ATTEMPT, (self._lease_until - self.clock.monotonic()) / 2)

    async def _renew(self) -> bool:
        """One renewal attempt; True when Nomad confirmed it."""
        assert self._lock_id is not None
        started = self.clock.monotonic()
        try:
            budget = self._attempt_budget()
            answer = await _race(
                self.nomad.lock_renew(self.path, self._lock_id), self.clock.sleep(budget)
            )
            if answer is None:  # abandoned: the next attempt must still fit in the lease
                raise TimeoutError(f"no answer within {budget:g}s")
        except LockLost:
            log.warning("leader election: the lock on %s lapsed", self.path)
            self._lock_id = None
        except (ReconcilerError, TimeoutError) as exc:
            # Keep trying: is_leader() turns false by itself when the lease ends, and a
            # renewal after that is refused by Nomad once the lock lapsed (LockLost).
            log.warning("leader election: renewing %s failed: %s", self.path, exc)
        else:
            self._lease_until = started + self.ttl - self.margin
            self.is_leader()
            return True
        self.is_leader()
        return False

    async def _release(self) -> None:
        leading = self.is_leader()
        lock_id, self._lock_id = self._lock_id, None
        self._lease_until = 0.0
        self._note(False)
        if lock_id is None or not leading:
            # Without a lease the lock may have lapsed and be inside its lock-delay:
            # releasing it then would hand it on early (see the module doc). Let it lapse.
            return
        # The standby need not wait for the lock to lapse; but a shutdown must not
        # hang on a Nomad that does not answer either.
        with contextlib.suppress(ReconcilerError, TimeoutError):
            await asyncio.wait_for(self.nomad.lock_release(self.path, lock_id), RELEASE_WAIT)


async def _sleep_or_stop(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    await _unless_stopped(clock.sleep(seconds), stop)


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """Run ``work`` until it ends or ``stop`` is set; its result, or None when stopped."""
    return await _race(work, stop.wait())


async def _race(work: Coroutine[Any, Any, T], other: Coroutine[Any, Any, Any]) -> T | None:
    """Run ``work`` until it ends or ``other`` does, whichever comes first."""
    task = asyncio.ensure_future(work)
    rival = asyncio.ensure_future(other)
    try:
        await asyncio.wait({task, rival}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        rival.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return None
    return task.result()  # a bug inside must surface, not vanish with the task
