"""A pool held by a cooldown writes the same status on every pass (no countdown churn)."""

from __future__ import annotations

from reconciler.diff import plan_to_json, render_text
from reconciler.plan import plan
from reconciler.scaling.decide import LastScale
from reconciler.status import status_items
from tests.worlds import NOW, alloc, ready_member, spec, world

POLICY = (
    "cooldown: 5m\n"
    "checks:\n"
    "  - {name: mem, metric: percentage-allocated_memory,"
    " strategy: {name: target-value, target: 70}}\n"
)


def test_passes_inside_a_cooldown_write_identical_status_and_plan_shows_the_countdown() -> None:
    s = spec(min=1, max=10, policy=POLICY)
    members = [ready_member(s, i) for i in range(3)]
    # 1,900 of 2,048 MB on each node: 93% against 70 wants more, but the scale-down a
    # minute ago holds every decision for 5 minutes.
    allocs = [alloc(n.id, i, mem=1900) for i, (_, n) in enumerate(members)]
    w = world([i for i, _ in members], [n for _, n in members], allocs)
    last = LastScale(3, NOW - 60, "down")

    first = plan(s, w, NOW, (), last)
    later = plan(s, w, NOW + 10, (), last)
    assert first.desired == later.desired == 3
    items = status_items(first, 10, (), [], {}, NOW)
    assert status_items(later, 10, (), [], items, NOW + 10) == items
    # The countdown is the plan's to show, beside a reason that does not move.
    assert first.scaling is not None and later.scaling is not None
    assert (first.scaling.cooldown_remaining, later.scaling.cooldown_remaining) == (240, 230)
    assert first.scaling.cooldown_until == later.scaling.cooldown_until == NOW + 240
    assert "  cooldown: 3m50s left" in render_text(later, s, "p")
    scaling = plan_to_json(later, s, "p")["scaling"]
    assert scaling["cooldown_remaining_seconds"] == 230
    assert scaling["cooldown_until"] == "2023-11-14T22:17:20Z"
