"""The pauses between attempts: jittered exponential backoff, capped at ``backoff_max``.

README (tenacity: "retries with jittered exponential backoff"): after the n-th failed
attempt the executor waits a random time between 0 and ``0.5 s x 2**(n-1)``, never more
than ``backoff_max``. The pauses are waited on the executor's clock; the clock below
records each one and lets it pass at once, so hours of backoff take no time.

The jitter is random; each test seeds ``random`` so that it runs the same every time.
The bounds asserted hold for any draw: a seed only fixes which draws a wrong bound shows.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from reconciler.clock import ManualClock
from reconciler.errors import TemporaryError
from reconciler.execute import ActionResult, Executor, ExecutorLimits
from reconciler.plan import Action, ActionKind
from reconciler.spec import parse_pool_spec

SPEC = parse_pool_spec("web", {"min": "0", "max": "5", "cloud_init_vars": "servers: [10.0.0.1]"}, 1)
PURGE = Action(ActionKind.PURGE_NODE, "web-abc-3", "instance gone", node_id="n-3")


class Unavailable(TemporaryError):
    pass


class Recorder(ManualClock):
    """Records every pause asked of it; each is over at once."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


class Busy:
    """A Nomad that is temporarily unavailable for every call."""

    def __init__(self) -> None:
        self.calls = 0

    async def purge_node(self, node_id: str) -> None:
        self.calls += 1
        raise Unavailable("nomad busy")


@pytest.fixture(autouse=True)
def seeded() -> Iterator[None]:
    state = random.getstate()
    random.seed(20261203)
    yield
    random.setstate(state)


async def purge_until_given_up(
    attempts: int, backoff_max: float
) -> tuple[ActionResult, Busy, Recorder]:
    nomad, clock = Busy(), Recorder()
    ex = Executor(
        object(),  # type: ignore[arg-type]  # a purge needs no daemon
        nomad,  # type: ignore[arg-type]
        lambda spec, name: "",
        ExecutorLimits(attempts=attempts, backoff_max=backoff_max),
        clock=clock,
    )
    [result] = await ex.execute(SPEC, [PURGE])
    return result, nomad, clock


async def test_the_pauses_start_within_half_a_second_and_at_most_double_each_time() -> None:
    result, nomad, clock = await purge_until_given_up(attempts=12, backoff_max=1e6)
    assert not result.ok and result.temporary and result.error == "nomad busy"
    assert nomad.calls == 12
    assert len(clock.pauses) == 11  # one before each retry, none after the last attempt
    for n, pause in enumerate(clock.pauses):
        assert 0 < pause <= 0.5 * 2**n, (n, clock.pauses)
    # Jittered, not fixed: the pauses are spread over their ranges, and they grow.
    assert max(clock.pauses[-3:]) > 0.5 * 2**7


async def test_no_pause_is_longer_than_backoff_max() -> None:
    result, nomad, clock = await purge_until_given_up(attempts=12, backoff_max=2.0)
    assert not result.ok and nomad.calls == 12
    assert len(clock.pauses) == 11
    assert all(0 < pause <= 2.0 for pause in clock.pauses), clock.pauses
    # Past the third retry the range is capped, not shrunk: draws still reach above 1 s.
    assert max(clock.pauses[3:]) > 1.0


async def test_a_single_attempt_never_pauses() -> None:
    result, nomad, clock = await purge_until_given_up(attempts=1, backoff_max=10.0)
    assert not result.ok and nomad.calls == 1
    assert clock.pauses == []
