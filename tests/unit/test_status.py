"""Status items from a plan: conditions, counts, and when their times move."""

from __future__ import annotations

import json

from reconciler.plan import plan
from reconciler.status import status_items
from tests.worlds import NOW, ready_member, spec, world


def conds(items: dict[str, str]) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in json.loads(items["conditions"])}


def test_a_transition_time_moves_only_when_the_condition_flips() -> None:
    s = spec(min=2)
    launching = plan(s, world(), NOW)
    first = status_items(launching, 7, [], [], {}, NOW)
    assert conds(first)["Ready"]["status"] is False
    assert first["spec_index"] == "7" and first["desired"] == "2"

    # Still converging a minute later: same items, so nothing to write.
    assert status_items(launching, 7, [], [], first, NOW + 60) == first

    members = [ready_member(s, i) for i in range(2)]
    done = plan(s, world([m[0] for m in members], [m[1] for m in members]), NOW + 120)
    second = status_items(done, 7, [], [], first, NOW + 120)
    ready = conds(second)["Ready"]
    assert ready["status"] is True and ready["reason"] == "Converged"
    assert ready["last_transition"] != conds(first)["Ready"]["last_transition"]
    # SpecValid never flipped: its time is the first one.
    assert (
        conds(second)["SpecValid"]["last_transition"]
        == conds(first)["SpecValid"]["last_transition"]
    )


def test_an_invalid_spec_reports_its_problems_and_no_counts() -> None:
    items = status_items(None, 3, ["max: 1 is below min (3)"], [], {}, NOW)
    assert conds(items)["SpecValid"] == {
        "type": "SpecValid",
        "status": False,
        "reason": "InvalidSpec",
        "message": "max: 1 is below min (3)",
        "last_transition": conds(items)["SpecValid"]["last_transition"],
    }
    assert "desired" not in items and "ready" not in items


def test_garbage_in_the_previous_conditions_is_ignored() -> None:
    items = status_items(None, 3, ["x"], [], {"conditions": "not json"}, NOW)
    assert len(conds(items)) == 4
