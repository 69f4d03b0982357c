"""Applies a Plan: bounded concurrency, deadlines, retries, idempotency.

Every action is safe to run twice, so a crash between "did it" and "noticed it"
never hurts:

* launch uses the instance name as the idempotency key: "already exists" for
  our own name is success (the name embeds pool, template hash and ordinal);
* delete of a missing instance, purge of a missing node: done;
* drain of a node already draining: Nomad replaces the drain spec, same outcome.

Only temporary errors are retried (tenacity, jittered exponential backoff: after
the n-th failed attempt a pause drawn from [0, 0.5 s x 2**(n-1)], at most
``backoff_max``, waited on the executor's clock); permanent ones are reported at
once. A launch the daemon reports as "being prepared" is our own earlier launch of
that name still running: in progress, not an error, and not retried.

Routing: a launch or delete goes to the daemon of ``action.host`` (drains and purges
are Nomad's). Launches in flight are bounded per host (its ``max_parallel_launches``:
multipassd has crashed under ten at once, canonical/multipass#3336); a lone client with
no bound of its own, by ``launch_concurrency``. An action for a host with no client
(not in the fleet, an invalid host variable, not connected) fails at once as a
temporary error naming it.

Fencing: ``fence`` (leader election's ``is_leader``) is asked immediately
before every attempt, after the concurrency slot is taken, so an action that
waited for a slot or a retry never reaches an API once the lease has ended.
``stop()`` (shutdown) lets calls already sent finish but starts no new attempt:
actions still queued for a slot, or between retries, end at once. Either way the
action is *abandoned*: it says nothing about the pool, so it feeds no backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from reconciler.clock import Clock, SystemClock
from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.hosts import HostUnavailable
from reconciler.multipass.errors import BeingPrepared
from reconciler.nomad.errors import NotFound
from reconciler.ownership import DEFAULT_HOST
from reconciler.plan import Action, ActionKind, drain_meta
from reconciler.spec import PoolSpec

log = logging.getLogger(__name__)


class InstanceApi(Protocol):
    """What the executor needs of the Multipass client."""

    async def launch(
        self,
        name: str,
        *,
        image: str,
        cpus: int,
        memory: str,
        disk: str,
        user_data: str,
        timeout: float,
        exist_ok: bool,
    ) -> object: ...

    async def delete(self, names: list[str], *, purge: bool, missing_ok: bool) -> object: ...


@runtime_checkable
class InstancesByHost(Protocol):
    """Each host's Multipass client (reconciler/fleet.py's Fleet is one)."""

    def client(self, host: str) -> InstanceApi:
        """The host's client; raises a TemporaryError naming the host when it has none."""
        ...

    def launch_limit(self, host: str) -> int | None:
        """Launches in flight at once on the host's daemon; None: no bound of its own."""
        ...


class OneHost:
    """One client as the only host, ``default``, with no per-host launch bound (as before
    hosts: ``launch_concurrency`` alone bounds its launches)."""

    def __init__(self, instances: InstanceApi) -> None:
        self.instances = instances

    def client(self, host: str) -> InstanceApi:
        if host != DEFAULT_HOST:
            raise HostUnavailable(
                host, f"host {host!r} is not in the fleet (one daemon: host {DEFAULT_HOST})"
            )
        return self.instances

    def launch_limit(self, host: str) -> int | None:
        return None


class NodeApi(Protocol):
    """What the executor needs of the Nomad client."""

    async def drain_node(
        self,
        node_id: str,
        *,
        deadline_s: float,
        ignore_system_jobs: bool,
        meta: dict[str, str],
    ) -> object: ...

    async def purge_node(self, node_id: str) -> object: ...


class ActionTimeout(TemporaryError):
    """An action's call did not answer within its deadline."""


class Abandoned(ReconcilerError):
    """The executor did not (or no longer) dispatch an action: fenced off or stopping."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    ok: bool
    duration: float
    error: str | None = None
    temporary: bool = False
    # Not sent (again): the lease ended or the process is stopping. No verdict on the pool.
    abandoned: bool = False
    # The daemon is still preparing this very launch (an earlier call of ours): under way.
    in_progress: bool = False


@dataclass(frozen=True, slots=True)
class ExecutorLimits:
    launch_concurrency: int = 3
    concurrency: int = 10
    launch_timeout: float = 900.0
    call_timeout: float = 60.0
    attempts: int = 4
    backoff_max: float = 10.0


class _Slots(Protocol):
    async def acquire(self) -> object: ...

    def release(self) -> None: ...


class HostLaunchSlots:
    """Launches in flight on one host, at most ``limit()`` at once.

    The limit is read at every acquire, so an edit of the host's max_parallel_launches
    applies to the next launch. A release wakes every waiter to look again: a waiter
    cancelled after its wake-up cannot swallow it.
    """

    def __init__(self, limit: Callable[[], int | None]) -> None:
        self._limit = limit
        self.held = 0
        self._waiters: list[asyncio.Future[None]] = []

    def _free(self) -> bool:
        limit = self._limit()
        return limit is None or self.held < max(1, limit)

    def take_if_free(self) -> bool:
        """Take a slot at once if one is free (and nobody waits before us)."""
        if self._waiters or not self._free():
            return False
        self.held += 1
        return True

    async def acquire(self) -> None:
        while not self._free():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        self.held += 1

    def release(self) -> None:
        self.held -= 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


class Executor:
    def __init__(
        self,
        instances: InstanceApi | InstancesByHost,
        nodes: NodeApi,
        render: Callable[[PoolSpec, str], str],
        limits: ExecutorLimits = ExecutorLimits(),
        *,
        fence: Callable[[], bool] | None = None,
        clock: Clock | None = None,
    ) -> None:
        # One client alone (tests, tools) is the host "default".
        self._hosts: InstancesByHost = (
            instances if isinstance(instances, InstancesByHost) else OneHost(instances)
        )
        self._host_launches: dict[str, HostLaunchSlots] = {}
        self._nodes = nodes
        self._render = render
        self.limits = limits
        self.fence = fence  # leader election's is_leader; None: always allowed
        self._clock = clock or SystemClock()  # the pauses between attempts are waited on it
        self._launch_slots = asyncio.Semaphore(limits.launch_concurrency)
        self._slots = asyncio.Semaphore(limits.concurrency)
        self._stopping = asyncio.Event()
        self.inflight: set[tuple[str, str]] = set()

    def stop(self) -> None:
        """Shutting down: no new attempt starts; calls already sent may finish."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _may_dispatch(self, action: Action) -> None:
        """Raises Abandoned unless this replica may send ``action`` right now."""
        if self._stopping.is_set():
            raise Abandoned(f"{action.kind.value} {action.instance}: not sent, shutting down")
        if self.fence is not None and not self.fence():
            raise Abandoned(
                f"{action.kind.value} {action.instance}: not sent, this replica no longer leads"
            )

    async def _pause(self, seconds: float) -> None:
        """The wait between attempts, on the clock; cut short by ``stop()`` (the next attempt
        is then refused)."""
        pause = asyncio.ensure_future(self._clock.sleep(seconds))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({pause, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pause.cancel()
            stopping.cancel()

    async def _slot(self, slots: _Slots) -> bool:
        """Take a concurrency slot; False (holding none) when ``stop()`` comes first."""
        if isinstance(slots, HostLaunchSlots) and slots.take_if_free():
            # A host with room: no wait, so no turn of the loop either (and after stop()
            # the attempt is refused by _may_dispatch, with the slot released as usual).
            return True
        taking = asyncio.ensure_future(slots.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({taking, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while queued: hold no slot on the way out
            _give_back(taking, slots)
            raise
        finally:
            stopping.cancel()
        if self._stopping.is_set():  # even a slot got in the same instant goes back
            _give_back(taking, slots)
            return False
        return True

    async def execute(self, spec: PoolSpec, actions: Iterable[Action]) -> list[ActionResult]:
        """Run the actions concurrently within the limits; one result per action, in order."""
        return list(await asyncio.gather(*(self.run_action(spec, a) for a in actions)))

    async def run_action(self, spec: PoolSpec, action: Action) -> ActionResult:
        if action.key in self.inflight:
            return ActionResult(
                action, ok=False, duration=0.0, error="already in flight", temporary=True
            )
        self.inflight.add(action.key)
        start = time.monotonic()
        try:
            await self._attempts(spec, action)
        except Exception as exc:  # a bug must fail this action, not the loop
            return _not_done(spec, action, exc, time.monotonic() - start)
        finally:
            self.inflight.discard(action.key)
        duration = time.monotonic() - start
        log.info("action done", extra=_fields(spec, action, "ok", duration))
        return ActionResult(action, ok=True, duration=duration)

    def _slots_for(self, action: Action) -> list[_Slots]:
        """The concurrency slots an action takes, in order.

        A launch takes its host's slot. A host with a bound of its own (every host of
        a fleet) needs no shared one: launches over H hosts go H x its bound at once, so
        0 -> N takes about ceil(N / (H x bound)) launch times (benchmarks/fleet_launch.py).
        A single client with no bound of its own takes a ``launch_concurrency`` slot, as
        before hosts (a launch waiting on a busy host holds none of the shared ones).
        """
        if action.kind is not ActionKind.LAUNCH:
            return [self._slots]
        host = self._host_launches.get(action.host)
        if host is None:
            host = HostLaunchSlots(lambda: self._hosts.launch_limit(action.host))
            self._host_launches[action.host] = host
        if self._hosts.launch_limit(action.host) is not None:
            return [host]
        return [host, self._launch_slots]

    async def _attempts(self, spec: PoolSpec, action: Action) -> None:
        """Dispatch with retries, within its slots; the fence is asked before every attempt."""
        # No client for the host: a temporary error at once, not retried here.
        instances = (
            self._hosts.client(action.host)
            if action.kind in (ActionKind.LAUNCH, ActionKind.DELETE)
            else None
        )
        held: list[_Slots] = []
        try:
            for slots in self._slots_for(action):
                if not await self._slot(slots):
                    raise Abandoned(
                        f"{action.kind.value} {action.instance}: not sent, shutting down"
                    )
                held.append(slots)
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda exc: _retryable(exc, action)),
                wait=wait_random_exponential(multiplier=0.5, max=self.limits.backoff_max),
                stop=stop_after_attempt(self.limits.attempts),
                sleep=self._pause,
                reraise=True,
            ):
                with attempt:
                    self._may_dispatch(action)
                    try:
                        await self._dispatch(spec, action, instances)
                    except TimeoutError:
                        raise ActionTimeout(
                            f"{action.kind.value} {action.instance}: no answer within "
                            f"{self.limits.call_timeout:.0f}s"
                        ) from None
        finally:
            for slots in reversed(held):
                slots.release()

    async def _dispatch(
        self, spec: PoolSpec, action: Action, instances: InstanceApi | None
    ) -> None:
        if action.kind is ActionKind.LAUNCH:
            assert instances is not None
            await instances.launch(
                action.instance,
                image=spec.image,
                cpus=spec.cpus,
                memory=spec.memory,
                disk=spec.disk,
                user_data=self._render(spec, action.instance),
                timeout=self.limits.launch_timeout,
                exist_ok=True,
            )
        elif action.kind is ActionKind.DRAIN:
            assert action.node_id is not None
            # A node purged meanwhile answers NotFound: surfaced, and the next pass
            # (which no longer sees the node) deletes the instance without a drain.
            await asyncio.wait_for(
                self._nodes.drain_node(
                    action.node_id,
                    deadline_s=action.deadline_s
                    if action.deadline_s is not None
                    else spec.drain_deadline,
                    ignore_system_jobs=spec.drain_ignore_system_jobs,
                    meta=drain_meta(spec, action.reason),
                ),
                self.limits.call_timeout,
            )
        elif action.kind is ActionKind.DELETE:
            assert instances is not None
            await asyncio.wait_for(
                instances.delete([action.instance], purge=True, missing_ok=True),
                self.limits.call_timeout,
            )
        elif action.kind is ActionKind.PURGE_NODE:
            assert action.node_id is not None
            with contextlib.suppress(NotFound):  # already gone: what purging wanted
                await asyncio.wait_for(
                    self._nodes.purge_node(action.node_id), self.limits.call_timeout
                )


def _give_back(taking: asyncio.Future[Any], slots: _Slots) -> None:
    """Undo a slot request: release the slot if it was granted, else withdraw the request."""
    if not taking.done():
        taking.cancel()  # Semaphore.acquire passes a grant that races this on to the next
    elif not taking.cancelled():  # granted: acquire ends only by a grant or a cancel
        slots.release()


def _retryable(exc: BaseException, action: Action) -> bool:
    """Temporary errors are retried; our own launch still being prepared is not an error."""
    if isinstance(exc, BeingPrepared) and _is_own_launch(exc, action):
        return False
    return isinstance(exc, TemporaryError)


def _is_own_launch(exc: BeingPrepared, action: Action) -> bool:
    return action.kind is ActionKind.LAUNCH and exc.name == action.instance


def _not_done(spec: PoolSpec, action: Action, exc: Exception, duration: float) -> ActionResult:
    """The result (and the log line) of an action that ended on ``exc``."""
    if isinstance(exc, Abandoned):
        log.info("action abandoned: %s", exc, extra=_fields(spec, action, "abandoned", duration))
        return ActionResult(action, ok=False, duration=duration, error=str(exc), abandoned=True)
    if isinstance(exc, BeingPrepared) and _is_own_launch(exc, action):
        log.info("launch under way", extra=_fields(spec, action, "in progress", duration))
        return ActionResult(action, ok=True, duration=duration, in_progress=True)
    if not isinstance(exc, ReconcilerError):
        log.exception("action %s %s crashed", action.kind.value, action.instance)
    log.warning(
        "action failed", extra={**_fields(spec, action, "error", duration), "error": str(exc)}
    )
    return ActionResult(
        action,
        ok=False,
        duration=duration,
        error=str(exc),
        temporary=isinstance(exc, TemporaryError),
    )


def _fields(
    spec: PoolSpec, action: Action, outcome: str, duration: float | None = None
) -> dict[str, object]:
    """The structured log fields of one action's outcome."""
    return {
        "pool": spec.pool,
        "action": action.kind.value,
        "instance": action.instance,
        "host": action.host,
        "node": action.node_id,
        "outcome": outcome,
        "duration": duration,
    }
