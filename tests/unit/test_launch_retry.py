"""A launch retried after a timeout: "already exists" is success for our own instance.

The first attempt's deadline passes while the daemon goes on and creates the VM
(multipassd runs a launch in a task of its own). The executor retries the
temporary error; the retry finds the name taken. Since the name embeds pool,
template hash and ordinal, that instance is the one we asked for: the launch is
done, not failed, and no second VM is made.

``Daemon`` below answers as multipassd and the client do together: a launch of
a name that exists is ``AlreadyExists`` unless ``exist_ok`` (then a result with
``created=False``), as ``MultipassClient.launch`` documents.
"""

from __future__ import annotations

from reconciler.execute import Executor, ExecutorLimits
from reconciler.multipass.client import LaunchResult
from reconciler.multipass.errors import AlreadyExists, DeadlineExceeded, LaunchFailed
from reconciler.plan import Action, ActionKind
from reconciler.spec import parse_pool_spec

SPEC = parse_pool_spec("web", {"min": "0", "max": "5", "cloud_init_vars": "servers: [10.0.0.1]"}, 1)
NAME = f"web-{SPEC.template_hash}-0"
FAST = ExecutorLimits(attempts=4, backoff_max=0.01)


class Daemon:
    """Instances by name; the first launch of each name creates it, then times out."""

    def __init__(self, *, times_out: int = 1) -> None:
        self.instances: dict[str, dict[str, object]] = {}
        self.calls: list[tuple[str, bool]] = []  # (name, exist_ok) per attempt
        self.times_out = times_out

    async def launch(self, name: str, *, exist_ok: bool, **shape: object) -> LaunchResult:
        self.calls.append((name, exist_ok))
        if name in self.instances:
            if exist_ok:
                return LaunchResult(name, created=False)
            raise AlreadyExists(name, f'launch: instance "{name}" already exists')
        self.instances[name] = shape
        if self.times_out > 0:
            self.times_out -= 1
            raise DeadlineExceeded("launch: no answer from multipassd before the deadline")
        return LaunchResult(name, created=True)

    async def delete(self, names: list[str], **_: object) -> None:
        raise AssertionError("no delete is planned here")


class Nodes:
    async def drain_node(self, *_: object, **__: object) -> None:
        raise AssertionError("no drain is planned here")

    async def purge_node(self, *_: object) -> None:
        raise AssertionError("no purge is planned here")


def executor(daemon: Daemon) -> Executor:
    return Executor(daemon, Nodes(), lambda spec, name: "#cloud-config\n", FAST)


async def test_a_launch_that_timed_out_but_created_the_vm_is_done_on_retry() -> None:
    daemon = Daemon(times_out=1)
    [result] = await executor(daemon).execute(
        SPEC, [Action(ActionKind.LAUNCH, NAME, "scale up: 0 of 1 members")]
    )
    assert result.ok, result.error
    assert result.error is None and not result.temporary and not result.abandoned
    assert not result.in_progress
    assert [n for n, _ in daemon.calls] == [NAME, NAME]  # retried once, after the timeout
    assert all(exist_ok for _, exist_ok in daemon.calls)  # every attempt tolerates our own name
    assert list(daemon.instances) == [NAME]  # one VM, not a twin
    assert daemon.instances[NAME]["image"] == SPEC.image
    assert daemon.instances[NAME]["user_data"] == "#cloud-config\n"


async def test_timeouts_on_every_attempt_fail_the_launch_as_temporary() -> None:
    """The retry is bounded: a daemon that never answers in time is a temporary failure."""

    class NeverAnswers(Daemon):
        async def launch(self, name: str, *, exist_ok: bool, **shape: object) -> LaunchResult:
            self.calls.append((name, exist_ok))
            raise DeadlineExceeded("launch: no answer from multipassd before the deadline")

    daemon = NeverAnswers()
    [result] = await executor(daemon).execute(SPEC, [Action(ActionKind.LAUNCH, NAME, "up")])
    assert not result.ok and result.temporary
    assert "deadline" in (result.error or "")
    assert len(daemon.calls) == FAST.attempts


async def test_a_launch_the_daemon_refused_is_not_retried() -> None:
    """A permanent failure (the daemon undid the launch) is reported at once."""

    class Refuses(Daemon):
        async def launch(self, name: str, *, exist_ok: bool, **shape: object) -> LaunchResult:
            self.calls.append((name, exist_ok))
            raise LaunchFailed(name, f"launch {name}: image not found", instance_kept=False)

    daemon = Refuses()
    [result] = await executor(daemon).execute(SPEC, [Action(ActionKind.LAUNCH, NAME, "up")])
    assert not result.ok and not result.temporary
    assert len(daemon.calls) == 1
