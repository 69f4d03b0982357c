"""The one source of time.

Everything that needs "now" or needs to wait takes a ``Clock``. Production code
uses ``SystemClock``; tests and the simulators use ``ManualClock``, which only
moves when told, so minutes of cluster life take milliseconds and every run is
reproducible.

Times are POSIX seconds as floats (what Nomad's nanosecond timestamps divide to).
Durations that must not move with the wall clock (a leader's lease) are measured
on ``monotonic()``, which an NTP step or an operator's ``date -s`` cannot touch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

# A mapping from one clock's readings to another's: what a simulator puts on the wire
# for a moment of its world (``same_time`` unless the reader outside runs on another clock).
TimeMap = Callable[[float], float]


def same_time(t: float) -> float:
    return t


class Clock(Protocol):
    def now(self) -> float:
        """Current time, POSIX seconds. May step backwards or forwards (NTP, an operator)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never go backwards; for measuring durations."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``monotonic()`` has advanced by ``seconds``."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only through ``advance`` (and ``step_wall``).

    ``sleep`` parks the caller until enough time has been advanced, so code
    written against ``Clock`` runs unchanged under a test that drives time.
    ``step_wall`` moves only the wall reading, as an NTP step does, so tests can
    show that what is measured on ``monotonic()`` does not follow it.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, fut))
        await fut

    def step_wall(self, seconds: float) -> None:
        """Step the wall reading by ``seconds`` (either way); no time passes, nobody wakes."""
        self._now += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self._now += seconds
        self._mono += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self._mono]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self._mono]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)


class ScaledClock:
    """Real time, sped up by ``speed``.

    The demo and ``reconciler sim --speed`` use it so that realistic durations
    (a 40 s boot, a 30 s heartbeat timeout) pass in a fraction of the time while
    everything still runs on the real event loop over real sockets.
    """

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed: {speed} must be positive")
        self.speed = speed
        self._start = time.time() if start is None else start
        self._t0 = time.monotonic()

    def now(self) -> float:
        return self._start + self.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def wall_time(self, t: float) -> float:
        """The wall-clock moment at which this clock reads ``t`` (``now()``: ``time.time()``).

        Durations shrink by ``speed``: what runs sped up inside stays sped up, but the
        moments a reader on wall time compares with its own clock are real ones.
        """
        return self._start + (t - self._start) / self.speed
