"""Applies a Plan: bounded concurrency, deadlines, retries, idempotency.

Every action is safe to run twice, so a crash between "did it" and "noticed it"
never hurts:

* launch uses the instance name as the idempotency key: "already exists" for
  our own name is success (the name embeds pool, template hash and ordinal);
* delete of a missing instance, purge of a missing node: done;
* drain of a node already draining: Nomad replaces the drain spec, same outcome.

Only temporary errors are retried (tenacity, jittered exponential backoff);
permanent ones are reported at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.nomad.errors import NotFound
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


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    ok: bool
    duration: float
    error: str | None = None
    temporary: bool = False


@dataclass(frozen=True, slots=True)
class ExecutorLimits:
    launch_concurrency: int = 3
    concurrency: int = 10
    launch_timeout: float = 900.0
    call_timeout: float = 60.0
    attempts: int = 4
    backoff_max: float = 10.0


class Executor:
    def __init__(
        self,
        instances: InstanceApi,
        nodes: NodeApi,
        render: Callable[[PoolSpec, str], str],
        limits: ExecutorLimits = ExecutorLimits(),
    ) -> None:
        self._instances = instances
        self._nodes = nodes
        self._render = render
        self.limits = limits
        self._launch_slots = asyncio.Semaphore(limits.launch_concurrency)
        self._slots = asyncio.Semaphore(limits.concurrency)
        self.inflight: set[tuple[str, str]] = set()

    async def execute(self, spec: PoolSpec, actions: Iterable[Action]) -> list[ActionResult]:
        """Run the actions concurrently within the limits; one result per action, in order."""
        return list(await asyncio.gather(*(self.run_action(spec, a) for a in actions)))

    async def run_action(self, spec: PoolSpec, action: Action) -> ActionResult:
        if action.key in self.inflight:
            return ActionResult(
                action, ok=False, duration=0.0, error="already in flight", temporary=True
            )
        self.inflight.add(action.key)
        slots = self._launch_slots if action.kind is ActionKind.LAUNCH else self._slots
        start = time.monotonic()
        try:
            async with slots:
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(TemporaryError),
                    wait=wait_random_exponential(multiplier=0.5, max=self.limits.backoff_max),
                    stop=stop_after_attempt(self.limits.attempts),
                    reraise=True,
                ):
                    with attempt:
                        try:
                            await self._dispatch(spec, action)
                        except TimeoutError:
                            raise ActionTimeout(
                                f"{action.kind.value} {action.instance}: no answer within "
                                f"{self.limits.call_timeout:.0f}s"
                            ) from None
        except Exception as exc:  # a bug must fail this action, not the loop
            if not isinstance(exc, ReconcilerError):
                log.exception("action %s %s crashed", action.kind.value, action.instance)
            duration = time.monotonic() - start
            log.warning(
                "action failed",
                extra={
                    "pool": spec.pool,
                    "action": action.kind.value,
                    "instance": action.instance,
                    "node": action.node_id,
                    "outcome": "error",
                    "error": str(exc),
                    "duration": duration,
                },
            )
            return ActionResult(
                action,
                ok=False,
                duration=duration,
                error=str(exc),
                temporary=isinstance(exc, TemporaryError),
            )
        finally:
            self.inflight.discard(action.key)
        duration = time.monotonic() - start
        log.info(
            "action done",
            extra={
                "pool": spec.pool,
                "action": action.kind.value,
                "instance": action.instance,
                "node": action.node_id,
                "outcome": "ok",
                "duration": duration,
            },
        )
        return ActionResult(action, ok=True, duration=duration)

    async def _dispatch(self, spec: PoolSpec, action: Action) -> None:
        if action.kind is ActionKind.LAUNCH:
            await self._instances.launch(
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
            await asyncio.wait_for(
                self._instances.delete([action.instance], purge=True, missing_ok=True),
                self.limits.call_timeout,
            )
        elif action.kind is ActionKind.PURGE_NODE:
            assert action.node_id is not None
            with contextlib.suppress(NotFound):  # already gone: what purging wanted
                await asyncio.wait_for(
                    self._nodes.purge_node(action.node_id), self.limits.call_timeout
                )
