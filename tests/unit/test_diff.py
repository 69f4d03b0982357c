"""The dry-run diff: terraform-style text, colour rules, and the JSON contract."""

from __future__ import annotations

import io
import json

import pytest

from reconciler import ownership
from reconciler.diff import PLAN_SCHEMA, plan_to_json, render_text, use_colour
from reconciler.plan import plan
from tests.worlds import NOW, alloc, instance, node, ready_member, spec, world

PATH = "nomad/jobs/multipass-reconciler/pools/web"


def shrinking():  # type: ignore[no-untyped-def]
    s = spec(min=1, max=3, drain_deadline="15m")
    members = [ready_member(s, i) for i in range(3)]
    busy = members[0][1]
    w = world([m[0] for m in members], [m[1] for m in members], [alloc(busy.id), alloc(busy.id, 1)])
    return s, plan(s, w, NOW)


def test_text_has_the_header_one_line_per_action_and_a_summary() -> None:
    s, p = shrinking()
    text = render_text(p, s, PATH)
    lines = text.splitlines()
    assert lines[0] == f"Pool web  ({PATH} @ index 10, template hash {s.template_hash})"
    assert lines[1] == "  desired 1: min = 1 (no count set)"
    drains = [line for line in lines if line.startswith("  - drain")]
    assert len(drains) == 2
    assert "0 allocations, deadline 15m" in drains[0] and "# scale down" in drains[0]
    assert lines[-1] == "Plan: 0 to launch, 2 to drain, 0 to delete, 0 nodes to purge."
    assert "\x1b[" not in text


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Tty()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Tty())
    s, p = shrinking()
    assert "\x1b[33m" in render_text(p, s, PATH, colour=True)  # drains in yellow


def test_an_empty_plan_says_so() -> None:
    s = spec(min=1, max=1)
    i, n = ready_member(s, 0)
    text = render_text(plan(s, world([i], [n]), NOW), s, PATH)
    assert text.endswith("No changes. The pool matches its spec.\n")


def test_json_follows_the_documented_schema() -> None:
    s, p = shrinking()
    doc = json.loads(json.dumps(plan_to_json(p, s, PATH)))
    assert doc["schema"] == PLAN_SCHEMA and doc["valid"] is True and doc["scaling"] is None
    assert doc["summary"] == {"launch": 0, "drain": 2, "delete": 0, "purge-node": 0}
    drain = doc["actions"][0]
    assert set(drain) == {
        "kind",
        "instance",
        "node_id",
        "host",
        "reason",
        "allocations",
        "deadline_seconds",
    }
    assert drain["deadline_seconds"] == 900.0
    assert drain["host"] == "default"  # a world before hosts: its one daemon


def test_an_autoscaled_pool_shows_why_it_wants_its_count() -> None:
    policy = (
        "checks:\n"
        "  - {name: mem, metric: percentage-allocated_memory,"
        " strategy: {name: target-value, target: 50}}\n"
        "  - {name: unplaced, metric: blocked_evaluations}\n"
    )
    s = spec(min=1, max=2, policy=policy)
    i, n = ready_member(s, 0)
    # 1,536 of 2,048 MB allocated: 75% against 50 -> 2 nodes, clamped by max 2.
    p = plan(s, world([i], [n], [alloc(n.id, k, mem=512) for k in range(3)]), NOW)
    text = render_text(p, s, PATH)
    assert "check mem (won): percentage-allocated_memory = 75.0; proposes 2 (up)" in text
    assert "check unplaced: blocked_evaluations = 0.0; proposes - (none): nothing blocked" in text
    scaling = plan_to_json(p, s, PATH)["scaling"]
    assert scaling["winner"] == "mem" and scaling["count"] == 2 and scaling["scaled"] == "up"


def test_a_delete_shows_the_allocations_it_takes_with_it_in_text_and_json() -> None:
    s = spec(min=1, max=5)
    keep = ready_member(s, 0)
    name = f"web-{s.template_hash}-1"
    # A drain past its deadline with two allocations still on the node: deleted anyway.
    gone = node(name, eligible=False, draining=True, drain_by=s, deadline_at=NOW - 1)
    w = world([keep[0], instance(name)], [keep[1], gone], [alloc(gone.id), alloc(gone.id, 1)])
    p = plan(s, w, NOW)
    [delete] = [line for line in render_text(p, s, PATH).splitlines() if "- delete" in line]
    assert f"node {gone.id[:8]}, 2 allocations, purge instance" in delete
    [action] = plan_to_json(p, s, PATH)["actions"]
    assert (action["kind"], action["allocations"]) == ("delete", 2)


def test_a_paused_pool_that_differs_says_paused_and_what_it_would_do() -> None:
    s = spec(min=3, max=3, paused="true")
    i, n = ready_member(s, 0)
    text = render_text(plan(s, world([i], [n]), NOW), s, PATH)
    assert "matches its spec" not in text
    assert text.splitlines()[-1] == (
        "No changes: the pool is paused. Unpaused, it would plan: "
        "2 to launch, 0 to drain, 0 to delete, 0 nodes to purge."
    )


def test_a_pool_waiting_on_launches_says_so() -> None:
    s = spec(min=2, max=2)
    ready = ready_member(s, 0)
    booting = instance(ownership.instance_name("web", s.template_hash, 1), age=10)
    text = render_text(plan(s, world([ready[0], booting], [ready[1]]), NOW), s, PATH)
    assert text.splitlines()[-1] == "No changes to make now: waiting on 1 launch under way."


def test_a_stalled_rollout_is_not_a_pool_in_line() -> None:
    old = spec(min=1, max=1, image="22.04")
    s = spec(min=1, max=1)
    i, n = ready_member(old, 0)
    # Of the current spec, never joined, past join_timeout.
    stuck = instance(ownership.instance_name("web", s.template_hash, 0), age=3600)
    p = plan(s, world([i, stuck], [n]), NOW)
    assert p.stalled is not None and not p.actions
    last = render_text(p, s, PATH).splitlines()[-1]
    assert last.startswith("No changes can be made: the rollout is stalled on ")


def test_the_last_failure_is_shown_when_nothing_is_planned() -> None:
    s = spec(min=2, max=2)
    ready = ready_member(s, 0)
    booting = instance(ownership.instance_name("web", s.template_hash, 1), age=10)
    text = render_text(
        plan(s, world([ready[0], booting], [ready[1]]), NOW),
        s,
        PATH,
        failing="ActionsFailed: launch web-x-1: image not found",
    )
    assert "the last pass failed: ActionsFailed: launch web-x-1: image not found" in text
    assert "matches its spec" not in text


def test_counts_agree_with_their_nouns() -> None:
    s = spec(min=0, max=3)
    i, n = ready_member(s, 0)
    text = render_text(plan(s, world([i], [n], [alloc(n.id)]), NOW), s, PATH)
    assert "1 allocation, deadline" in text and "1 allocations" not in text
    assert "scale down: 1 member, 0 desired" in text
