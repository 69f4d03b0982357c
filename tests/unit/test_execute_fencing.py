"""The executor's fence and stop: nothing is sent once the lease is gone or shutdown began.

The fake APIs count every call that reaches them; that count is what a deposed
leader must not raise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reconciler.errors import TemporaryError
from reconciler.execute import ActionResult, Executor, ExecutorLimits
from reconciler.multipass.errors import BeingPrepared
from reconciler.plan import Action, ActionKind
from reconciler.spec import parse_pool_spec

SPEC = parse_pool_spec("web", {"min": "0", "max": "5", "cloud_init_vars": "servers: [10.0.0.1]"}, 1)


class Unavailable(TemporaryError):
    pass


class Instances:
    """Counts launches; each waits while its name is held, then does what ``outcome`` says."""

    def __init__(self, outcome: Callable[[str], None] = lambda name: None) -> None:
        self.launched: list[str] = []
        self.outcome = outcome
        self._gates: dict[str, asyncio.Event] = {}

    def hold(self, *names: str) -> None:
        for name in names:
            self._gates[name] = asyncio.Event()

    def release(self) -> None:
        for gate in self._gates.values():
            gate.set()

    async def launch(self, name: str, **_: object) -> None:
        self.launched.append(name)
        if name in self._gates:
            await self._gates[name].wait()
        self.outcome(name)

    async def delete(self, names: list[str], **_: object) -> None:
        raise AssertionError("no delete is planned here")


class Nodes:
    async def drain_node(self, *_: object, **__: object) -> None:
        raise AssertionError("no drain is planned here")

    async def purge_node(self, *_: object) -> None:
        raise AssertionError("no purge is planned here")


def launch(i: int) -> Action:
    return Action(ActionKind.LAUNCH, f"web-abc-{i}", "below min")


def executor(instances: Instances, **limits: float) -> Executor:
    return Executor(
        instances,
        Nodes(),
        lambda spec, name: "#cloud-config\n",
        ExecutorLimits(launch_concurrency=1, backoff_max=0.01, **limits),  # type: ignore[arg-type]
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_actions_queued_for_a_slot_are_not_sent_once_the_lease_is_gone() -> None:
    instances = Instances()
    instances.hold("web-abc-0")
    ex = executor(instances)
    leading = True
    ex.fence = lambda: leading
    tasks = [asyncio.create_task(ex.run_action(SPEC, launch(i))) for i in range(3)]
    await settle()
    assert instances.launched == ["web-abc-0"]  # the others wait for the one launch slot
    leading = False  # the lease ends while they wait
    instances.release()
    results = await asyncio.gather(*tasks)
    assert instances.launched == ["web-abc-0"]  # no new dispatch after the lease ended
    assert results[0].ok
    for r in results[1:]:
        assert r.abandoned and not r.ok and r.error is not None and "no longer leads" in r.error
    assert not ex.inflight


async def test_no_retry_is_sent_once_the_lease_is_gone() -> None:
    leading = True

    def fail_and_lose_the_lease(name: str) -> None:
        nonlocal leading
        leading = False  # the lease ends while the first attempt is out
        raise Unavailable("daemon busy")

    instances = Instances(fail_and_lose_the_lease)
    ex = executor(instances, attempts=4)
    ex.fence = lambda: leading
    result = await ex.run_action(SPEC, launch(0))
    assert instances.launched == ["web-abc-0"]  # one attempt; the three retries never went out
    assert result.abandoned and not result.ok


async def test_stop_ends_queued_actions_lets_sent_calls_finish_and_retries_no_more() -> None:
    def fail_once(name: str) -> None:
        if name == "web-abc-1":
            raise Unavailable("daemon busy")

    instances = Instances(fail_once)
    instances.hold("web-abc-0")
    ex = Executor(
        instances,
        Nodes(),
        lambda spec, name: "#cloud-config\n",
        ExecutorLimits(launch_concurrency=2, attempts=4, backoff_max=3600.0),
    )
    tasks = [asyncio.create_task(ex.run_action(SPEC, launch(i))) for i in range(3)]
    await settle()
    # web-abc-0 is out, web-abc-1 failed and waits (an hour) to retry, web-abc-2 waits for a slot
    assert instances.launched == ["web-abc-0", "web-abc-1"]
    ex.stop()
    instances.release()
    results: list[ActionResult] = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert results[0].ok  # a call already sent finished
    assert results[1].abandoned  # its retry was not sent
    assert results[1].error == "launch web-abc-1: not sent, shutting down"
    assert results[2].abandoned  # queued behind the slots: never sent
    assert results[2].error == "launch web-abc-2: not sent, shutting down"
    assert instances.launched == ["web-abc-0", "web-abc-1"]


async def test_our_own_launch_still_being_prepared_is_in_progress_not_a_failure() -> None:
    def preparing(name: str) -> None:
        raise BeingPrepared(name, f'instance "{name}" is being prepared')

    instances = Instances(preparing)
    result = await executor(instances, attempts=4).run_action(SPEC, launch(0))
    assert result.ok and result.in_progress and result.error is None
    assert instances.launched == ["web-abc-0"]  # not retried: the daemon is on it


async def test_another_name_being_prepared_is_still_an_error() -> None:
    def other(name: str) -> None:
        raise BeingPrepared("web-abc-9", 'instance "web-abc-9" is being prepared')

    result = await executor(Instances(other), attempts=2).run_action(SPEC, launch(0))
    assert not result.ok and not result.in_progress and result.temporary
