"""Status items from a plan: conditions, counts, and when their times move."""

from __future__ import annotations

import json

import pytest

from reconciler import logs, ownership
from reconciler.execute import ActionResult
from reconciler.model import NodeStatus
from reconciler.plan import plan
from reconciler.status import error_items, status_items
from tests.worlds import NOW, instance, node, ready_member, spec, world


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
    # One condition to alert on: a pool that is not reconciled at all is Degraded.
    degraded = conds(items)["Degraded"]
    assert degraded["status"] is True and degraded["reason"] == "InvalidSpec"
    assert degraded["message"] == "max: 1 is below min (3)"


def test_garbage_in_the_previous_conditions_is_ignored() -> None:
    items = status_items(None, 3, ["x"], [], {"conditions": "not json"}, NOW)
    assert len(conds(items)) == 4


def test_the_table_shows_what_a_person_needs_at_a_glance() -> None:
    from reconciler.status import read_status_table

    bad = status_items(None, 3, ["max: 1 is below min (3)"], [], {}, NOW)
    scaled = {
        "ready": "3",
        "desired": "4",
        "pending": "1",
        "notes": "protected members block replacement: web-bcdfg-0",
        "last_scale_at": "2026-11-25T04:00:00Z",
        "last_scale_count": "4",
        "last_scale_direction": "up",
        "last_scale_reason": "policy: check mem (factor 1.3) -> 4",
        "conditions": status_items(None, 1, ["x"], [], {}, NOW)["conditions"],
    }
    table = read_status_table({"db": bad, "web": scaled})
    lines = table.splitlines()
    assert lines[0].startswith("POOL") and lines[1].startswith("db")
    assert "SpecValid: max: 1 is below min (3)" in table
    assert "3/4" in table and "protected members block replacement" in table
    assert "last scaled up to 4 at 2026-11-25T04:00:00Z" in table


@pytest.fixture
def own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret registered here must not outlive the test (logs keeps them process-wide)."""
    monkeypatch.setattr(logs, "_anywhere", set())
    monkeypatch.setattr(logs, "_tokens", set())
    monkeypatch.setattr(logs, "_pattern", None)


@pytest.mark.usefixtures("own_secrets")
def test_a_secret_in_an_error_never_reaches_the_status_variable() -> None:
    secret = "s3cr3t-nomad-token-4f1c"
    logs.redact(secret)
    s = spec(min=1)
    p = plan(s, world(), NOW)
    failed = ActionResult(
        p.actions[0], ok=False, duration=0.1, error=f'POST /launch {{"token": "{secret}"}}: 500'
    )
    items = status_items(p, 7, [], [failed], {}, NOW)
    assert all(secret not in v for v in items.values()), items
    assert logs.REDACTED in items["last_error"]
    assert logs.REDACTED in str(conds(items)["Degraded"]["message"])
    # And an error handed in from outside a plan (a failed pass) is scrubbed too.
    assert secret not in status_items(p, 7, [], [], {}, NOW, error=f"boom {secret}")["last_error"]


def test_a_rollout_to_a_spec_whose_vm_never_joins_is_degraded_rollout_stalled() -> None:
    old = spec(min=2, max=2)
    new = spec(min=2, max=2, image="jammy", join_timeout="60s")
    pairs = [ready_member(old, i) for i in range(2)]
    stuck = instance(f"web-{new.template_hash}-0", age=61)
    p = plan(new, world([*(m[0] for m in pairs), stuck], [m[1] for m in pairs]), NOW)
    degraded = conds(status_items(p, 7, [], [], {}, NOW))["Degraded"]
    assert degraded["status"] is True and degraded["reason"] == "RolloutStalled"
    message = str(degraded["message"])
    assert stuck.name in message and "fix the spec" in message and "delete" in message


def test_protected_members_that_block_a_rollout_are_named_in_ready() -> None:
    s = spec(min=2, max=2)
    old = ready_member(s, 0, thash="bcdfg")
    kept = node(old[0].name, meta={ownership.META_PROTECT: "true"})
    current = ready_member(s, 1)
    p = plan(s, world([old[0], current[0]], [kept, current[1]]), NOW)
    items = status_items(p, 7, [], [], {}, NOW)
    ready = conds(items)["Ready"]
    assert ready["status"] is False and ready["reason"] == "RolloutBlocked"
    assert old[0].name in str(ready["message"])
    assert f"protected members block replacement: {old[0].name}" in items["notes"]


def test_a_short_circuit_outranks_a_stall_whose_cause_is_likelier_the_network() -> None:
    old = spec(min=3, max=3)
    new = spec(min=3, max=3, image="jammy", join_timeout="60s")
    pairs = [ready_member(old, i) for i in range(3)]
    down = [node(i.name, status=NodeStatus.DOWN, status_age=3600) for i, _ in pairs]
    stuck = instance(f"web-{new.template_hash}-0", age=61)
    p = plan(new, world([*(i for i, _ in pairs), stuck], down), NOW)
    assert p.stalled == stuck.name
    degraded = conds(status_items(p, 7, [], [], {}, NOW))["Degraded"]
    assert degraded["reason"] == "RemediationShortCircuited"
    assert f"rollout stalled: {stuck.name}" in status_items(p, 7, [], [], {}, NOW)["notes"]


def test_a_pass_that_planned_nothing_keeps_the_known_status_and_says_what_failed() -> None:
    s = spec(min=2)
    members = [ready_member(s, i) for i in range(2)]
    converged = plan(s, world([m[0] for m in members], [m[1] for m in members]), NOW)
    last_good = status_items(converged, 7, [], [], {}, NOW)
    assert conds(last_good)["Degraded"]["status"] is False

    failed = error_items(
        last_good, "observing failed: multipassd unreachable", "ObserveFailed", NOW + 30
    )
    degraded = conds(failed)["Degraded"]
    assert degraded["status"] is True and degraded["reason"] == "ObserveFailed"
    assert degraded["last_transition"] == "2023-11-14T22:13:50Z"  # NOW + 30
    assert failed["last_error"] == "observing failed: multipassd unreachable"
    # The counts and the Ready condition are the last known ones, kept as they were.
    assert failed["ready"] == "2" and failed["spec_index"] == "7"
    assert conds(failed)["Ready"] == conds(last_good)["Ready"]

    # The outage lasts: the same items, so nothing is written again.
    again = "observing failed: multipassd unreachable"
    assert error_items(failed, again, "ObserveFailed", NOW + 90) == failed

    # The next planned pass clears it, with a new transition time.
    recovered = status_items(converged, 7, [], [], failed, NOW + 120)
    assert conds(recovered)["Degraded"]["status"] is False
    assert conds(recovered)["Degraded"]["last_transition"] == "2023-11-14T22:15:20Z"
    assert "last_error" not in recovered


def test_an_error_with_no_status_yet_writes_a_degraded_condition_only() -> None:
    items = error_items({}, "planning failed: boom", "PlanningFailed", NOW, index=3)
    assert items["spec_index"] == "3" and items["last_error"] == "planning failed: boom"
    assert [c["type"] for c in json.loads(items["conditions"])] == ["Degraded"]


def test_status_json_gives_numbers_and_condition_objects_and_the_table_keeps_its_column() -> None:
    from reconciler.status import read_status_table, status_to_json

    items = status_items(None, 3, ["max: 1 is below min (3)"], [], {}, NOW)
    items = {**items, "ready": "2", "desired": "3", "last_error": "boom\nsecond line"}
    shown = status_to_json(items)
    assert shown["ready"] == 2 and shown["desired"] == 3 and shown["spec_index"] == 3
    assert {c["type"] for c in shown["conditions"]} == {
        "SpecValid",
        "Ready",
        "Progressing",
        "Degraded",
    }
    table = read_status_table({"web": items}).splitlines()
    assert table[-2:] == [f"{'':17}last error: boom", f"{'':17}  second line"]
    assert sum("max: 1 is below min (3)" in line for line in table) == 1
