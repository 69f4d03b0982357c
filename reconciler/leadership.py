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
Nomad stops acting by its own clock, whatever the network does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from reconciler.clock import Clock
from reconciler.errors import ReconcilerError
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import LockHeld, LockLost

log = logging.getLogger(__name__)

RELEASE_WAIT = 5.0  # real seconds a shutdown waits for Nomad to confirm the release


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
        self.identity = identity or default_identity()
        self.on_change = on_change
        self._lock_id: str | None = None
        self._lease_until = 0.0
        self._was_leader = False

    def is_leader(self) -> bool:
        """True while the lease holds; checked before every action."""
        leader = self._lock_id is not None and self.clock.now() < self._lease_until
        self._note(leader)
        return leader

    def _note(self, leader: bool) -> None:
        if leader != self._was_leader:
            self._was_leader = leader
            log.warning("leadership %s (%s)", "acquired" if leader else "lost", self.identity)
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
                    await _unless_stopped(self._renew(), stop)
                    wait = self.renew_every if self._lock_id else 0.0
                await _sleep_or_stop(self.clock, wait, stop)
        finally:
            if release:
                await self._release()
            else:
                self._lock_id = None
                self._note(False)

    async def _try_acquire(self) -> None:
        started = self.clock.now()
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

    async def _renew(self) -> None:
        assert self._lock_id is not None
        started = self.clock.now()
        try:
            await self.nomad.lock_renew(self.path, self._lock_id)
        except LockLost:
            log.warning("leader election: the lock on %s lapsed", self.path)
            self._lock_id = None
        except ReconcilerError as exc:
            # Keep trying while the lease lasts; is_leader() turns false by itself.
            log.warning("leader election: renewing %s failed: %s", self.path, exc)
            if self.clock.now() >= self._lease_until:
                self._lock_id = None
        else:
            self._lease_until = started + self.ttl - self.margin
        self.is_leader()

    async def _release(self) -> None:
        lock_id, self._lock_id = self._lock_id, None
        self._lease_until = 0.0
        self._note(False)
        if lock_id is None:
            return
        # The standby need not wait for the lock to lapse; but a shutdown must not
        # hang on a Nomad that does not answer either.
        with contextlib.suppress(ReconcilerError, TimeoutError):
            await asyncio.wait_for(self.nomad.lock_release(self.path, lock_id), RELEASE_WAIT)


async def _sleep_or_stop(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    await _unless_stopped(clock.sleep(seconds), stop)


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Run ``work`` until it ends or ``stop`` is set, whichever comes first."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if not task.cancelled():
        task.result()  # a bug inside must surface, not vanish with the task
