"""What the executor reports of each action: its result and its structured log line.

Operators read one log line per action outcome (docs/operations.md: pool, action,
instance, node, outcome, duration, and the error when there is one); the
controller reads the ActionResult (ok, temporary, abandoned, in progress). Both
are checked here for every way an action can end, through ``Executor.execute``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from reconciler.errors import PermanentError, TemporaryError
from reconciler.execute import ActionResult, Executor, ExecutorLimits
from reconciler.multipass.errors import BeingPrepared
from reconciler.nomad.errors import NotFound
from reconciler.plan import Action, ActionKind
from reconciler.spec import parse_pool_spec

SPEC = parse_pool_spec(
    "web",
    {
        "min": "0",
        "max": "5",
        "cloud_init_vars": "servers: [10.0.0.1]",
        "drain_deadline": "7m",
        "drain_ignore_system_jobs": "true",
    },
    1,
)
LAUNCH = Action(ActionKind.LAUNCH, "web-abc-0", "scale up")
DRAIN = Action(ActionKind.DRAIN, "web-abc-1", "scale down: 3 members, 2 desired", node_id="n-1")
DELETE = Action(ActionKind.DELETE, "web-abc-2", "drain complete", node_id="n-2")
PURGE = Action(ActionKind.PURGE_NODE, "web-abc-3", "instance gone", node_id="n-3")


class Unavailable(TemporaryError):
    pass


class Refused(PermanentError):
    pass


class Apis:
    """Both APIs in one; ``fail`` says what each call raises (None: it succeeds)."""

    def __init__(self, fail: Callable[[str, str], Exception | None] = lambda kind, name: None):
        self.fail = fail
        self.calls: list[tuple[str, str, dict[str, object]]] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def _call(self, kind: str, name: str, **kw: object) -> None:
        self.calls.append((kind, name, kw))
        if name in self.gates:
            await self.gates[name].wait()
        error = self.fail(kind, name)
        if error is not None:
            raise error

    async def launch(self, name: str, **kw: object) -> None:
        await self._call("launch", name, **kw)

    async def delete(self, names: list[str], **kw: object) -> None:
        await self._call("delete", names[0], names=names, **kw)

    async def drain_node(self, node_id: str, **kw: object) -> None:
        await self._call("drain", node_id, **kw)

    async def purge_node(self, node_id: str) -> None:
        await self._call("purge", node_id)


def executor(apis: Apis, **limits: float) -> Executor:
    return Executor(
        apis,
        apis,
        lambda spec, name: f"#cloud-config for {name} of {spec.pool}\n",
        ExecutorLimits(backoff_max=0.01, **limits),  # type: ignore[arg-type]
    )


def outcome_record(caplog: pytest.LogCaptureFixture, action: Action) -> logging.LogRecord:
    [record] = [
        r
        for r in caplog.records
        if r.name == "reconciler.execute" and getattr(r, "instance", None) == action.instance
    ]
    assert record.pool == "web"  # type: ignore[attr-defined]
    assert record.action == action.kind.value  # type: ignore[attr-defined]
    assert record.node == action.node_id  # type: ignore[attr-defined]
    assert record.host == action.host  # type: ignore[attr-defined]
    assert isinstance(record.duration, float)  # type: ignore[attr-defined]
    return record


async def test_every_kind_of_action_reaches_its_api_with_the_specs_settings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "reconciler.execute")
    apis = Apis()
    results = await executor(apis).execute(SPEC, [LAUNCH, DRAIN, DELETE, PURGE])
    assert [r.action for r in results] == [LAUNCH, DRAIN, DELETE, PURGE]
    assert all(r.ok and r.error is None for r in results)
    assert all(isinstance(r.duration, float) and r.duration >= 0 for r in results)
    calls = {kind: (name, kw) for kind, name, kw in apis.calls}
    assert calls["launch"] == (
        "web-abc-0",
        {
            "image": SPEC.image,
            "cpus": SPEC.cpus,
            "memory": SPEC.memory,
            "disk": SPEC.disk,
            "user_data": "#cloud-config for web-abc-0 of web\n",
            "timeout": ExecutorLimits().launch_timeout,
            "exist_ok": True,
        },
    )
    drain = calls["drain"]
    assert drain[0] == "n-1"
    assert drain[1]["deadline_s"] == 7 * 60  # the spec's, when the action names none
    assert drain[1]["ignore_system_jobs"] is True
    assert drain[1]["meta"] == {
        "multipass-reconciler.owner": "multipass-reconciler",
        "multipass-reconciler.pool": "web",
        "multipass-reconciler.reason": "scale down: 3 members, 2 desired",
    }
    assert calls["delete"] == (
        "web-abc-2",
        {"names": ["web-abc-2"], "purge": True, "missing_ok": True},
    )
    assert calls["purge"] == ("n-3", {})
    for action in (LAUNCH, DRAIN, DELETE, PURGE):
        record = outcome_record(caplog, action)
        assert record.getMessage() == "action done"
        assert record.outcome == "ok"  # type: ignore[attr-defined]
        assert record.levelno == logging.INFO


async def test_a_drain_with_its_own_deadline_uses_it() -> None:
    apis = Apis()
    action = Action(ActionKind.DRAIN, "web-abc-1", "unhealthy", node_id="n-1", deadline_s=0.0)
    [result] = await executor(apis).execute(SPEC, [action])
    assert result.ok
    assert apis.calls[0][2]["deadline_s"] == 0.0  # zero is a deadline too, not "unset"


async def test_a_purge_of_a_node_already_gone_is_done() -> None:
    apis = Apis(lambda kind, name: NotFound("no such node") if kind == "purge" else None)
    [result] = await executor(apis).execute(SPEC, [PURGE])
    assert result.ok and result.error is None


async def test_a_drain_of_a_node_gone_meanwhile_is_an_error() -> None:
    apis = Apis(lambda kind, name: NotFound("no such node") if kind == "drain" else None)
    [result] = await executor(apis, attempts=3).execute(SPEC, [DRAIN])
    assert not result.ok and "no such node" in (result.error or "")
    assert len(apis.calls) == 1  # permanent: not retried


async def test_a_permanent_failure_is_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "reconciler.execute")
    apis = Apis(lambda kind, name: Refused("image not found"))
    [result] = await executor(apis, attempts=3).execute(SPEC, [LAUNCH])
    assert result == ActionResult(
        LAUNCH, ok=False, duration=result.duration, error="image not found", temporary=False
    )
    assert isinstance(result.duration, float)
    record = outcome_record(caplog, LAUNCH)
    assert record.getMessage() == "action failed"
    assert record.levelno == logging.WARNING
    assert record.outcome == "error"  # type: ignore[attr-defined]
    assert record.error == "image not found"  # type: ignore[attr-defined]
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)  # not a crash


async def test_a_temporary_failure_is_retried_then_reported_as_temporary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "reconciler.execute")
    apis = Apis(lambda kind, name: Unavailable("daemon busy"))
    [result] = await executor(apis, attempts=3).execute(SPEC, [DELETE])
    assert not result.ok and result.temporary and result.error == "daemon busy"
    assert len(apis.calls) == 3
    assert outcome_record(caplog, DELETE).outcome == "error"  # type: ignore[attr-defined]


async def test_a_bug_fails_its_action_and_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "reconciler.execute")
    apis = Apis(lambda kind, name: KeyError("oops") if kind == "launch" else None)
    results = await executor(apis).execute(SPEC, [LAUNCH, PURGE])
    assert not results[0].ok and not results[0].temporary and not results[0].abandoned
    assert results[1].ok  # one action's bug does not fail the others
    [crash] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert crash.getMessage() == "action launch web-abc-0 crashed"
    assert crash.exc_info is not None and crash.exc_info[0] is KeyError
    assert outcome_record(caplog, LAUNCH).getMessage() == "action failed"


async def test_an_action_fenced_off_is_abandoned_and_logged_as_such(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "reconciler.execute")
    apis = Apis()
    ex = executor(apis)
    ex.fence = lambda: False
    [result] = await ex.execute(SPEC, [DRAIN])
    assert apis.calls == []
    assert result.action == DRAIN and result.abandoned and result.ok is False
    assert isinstance(result.duration, float)
    assert result.error == "drain web-abc-1: not sent, this replica no longer leads"
    record = outcome_record(caplog, DRAIN)
    assert record.getMessage() == f"action abandoned: {result.error}"
    assert record.outcome == "abandoned"  # type: ignore[attr-defined]
    assert record.levelno == logging.INFO


async def test_our_launch_being_prepared_is_logged_as_under_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "reconciler.execute")
    apis = Apis(lambda kind, name: BeingPrepared(name, f'instance "{name}" is being prepared'))
    [result] = await executor(apis).execute(SPEC, [LAUNCH])
    assert result.action == LAUNCH and result.ok and result.in_progress
    assert isinstance(result.duration, float)
    record = outcome_record(caplog, LAUNCH)
    assert record.getMessage() == "launch under way"
    assert record.outcome == "in progress"  # type: ignore[attr-defined]


async def test_the_same_action_twice_at_once_is_sent_once() -> None:
    apis = Apis()
    apis.gates["web-abc-0"] = asyncio.Event()
    ex = executor(apis)
    first = asyncio.create_task(ex.run_action(SPEC, LAUNCH))
    await asyncio.sleep(0)
    second = await ex.run_action(SPEC, LAUNCH)
    assert second.action == LAUNCH
    assert second.ok is False and second.temporary is True
    assert second.error == "already in flight"
    assert second.duration == 0.0
    assert ex.inflight == {("launch", "web-abc-0")}
    apis.gates["web-abc-0"].set()
    assert (await first).ok
    assert ex.inflight == set()
    assert len(apis.calls) == 1


async def test_an_action_cancelled_while_queued_for_a_slot_holds_none() -> None:
    """A pass cancelled while its actions wait must not leak their slots."""
    apis = Apis()
    apis.gates["web-abc-0"] = asyncio.Event()
    ex = executor(apis, launch_concurrency=1)
    first = asyncio.create_task(ex.run_action(SPEC, LAUNCH))
    queued = asyncio.create_task(
        ex.run_action(SPEC, Action(ActionKind.LAUNCH, "web-abc-5", "scale up"))
    )
    for _ in range(5):
        await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    apis.gates["web-abc-0"].set()
    assert (await first).ok
    # The one slot is free again: the next launch goes out.
    later = Action(ActionKind.LAUNCH, "web-abc-6", "scale up")
    result = await asyncio.wait_for(ex.run_action(SPEC, later), 5)
    assert result.ok
    assert [name for _, name, _ in apis.calls] == ["web-abc-0", "web-abc-6"]


async def test_launches_and_other_actions_have_separate_limits() -> None:
    apis = Apis()
    for name in ("web-abc-0", "web-abc-7", "n-1", "n-8"):
        apis.gates[name] = asyncio.Event()
    ex = executor(apis, launch_concurrency=1, concurrency=1)
    actions = [
        LAUNCH,
        Action(ActionKind.LAUNCH, "web-abc-7", "scale up"),
        DRAIN,
        Action(ActionKind.DRAIN, "web-abc-8", "scale down", node_id="n-8"),
    ]
    run = asyncio.ensure_future(ex.execute(SPEC, actions))
    for _ in range(10):
        await asyncio.sleep(0)
    assert sorted(name for _, name, _ in apis.calls) == ["n-1", "web-abc-0"]  # one of each
    for gate in apis.gates.values():
        gate.set()
    assert all(r.ok for r in await run)


async def test_the_duration_reported_is_the_time_the_action_took(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "reconciler.execute")
    readings = iter([100.0, 102.5])

    class Stopwatch:  # the executor's own readings only; asyncio keeps the real clock
        @staticmethod
        def monotonic() -> float:
            return next(readings)

    monkeypatch.setattr("reconciler.execute.time", Stopwatch)
    [result] = await executor(Apis()).execute(SPEC, [PURGE])
    assert result.duration == 2.5
    assert outcome_record(caplog, PURGE).duration == 2.5  # type: ignore[attr-defined]


async def test_a_fence_given_at_construction_is_asked() -> None:
    apis = Apis()
    ex = Executor(apis, apis, lambda spec, name: "", ExecutorLimits(), fence=lambda: False)
    [result] = await ex.execute(SPEC, [PURGE])
    assert result.abandoned and apis.calls == []


async def test_after_stop_nothing_is_sent_and_the_reason_says_so() -> None:
    apis = Apis()
    ex = executor(apis)
    ex.stop()
    assert ex.stopping
    [result] = await ex.execute(SPEC, [LAUNCH])
    assert result.abandoned and result.ok is False
    assert result.error == "launch web-abc-0: not sent, shutting down"
    assert apis.calls == []


async def test_a_call_that_does_not_answer_in_time_is_a_temporary_failure() -> None:
    for action in (DRAIN, DELETE, PURGE):
        apis = Apis()
        apis.gates[action.node_id if action.kind is not ActionKind.DELETE else action.instance] = (
            asyncio.Event()
        )  # never set: the call hangs
        ex = executor(apis, call_timeout=0.05, attempts=2)
        [result] = await asyncio.wait_for(ex.execute(SPEC, [action]), 5)
        assert not result.ok and result.temporary
        assert result.error == f"{action.kind.value} {action.instance}: no answer within 0s"
        assert len(apis.calls) == 2  # retried once, then given up


async def test_the_duration_of_a_failed_action_is_the_time_it_took(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings = iter([10.0, 14.0])

    class Stopwatch:
        @staticmethod
        def monotonic() -> float:
            return next(readings)

    monkeypatch.setattr("reconciler.execute.time", Stopwatch)
    apis = Apis(lambda kind, name: Refused("no"))
    [result] = await executor(apis).execute(SPEC, [PURGE])
    assert result.duration == 4.0 and not result.ok
