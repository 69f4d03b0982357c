"""plan(...) of a pool whose image the daemon will not launch, and of a paused pool.

Both are spec-level: the plan says why in one note, word for word, and plans only
what does not count on a launch (an image problem) or nothing at all (paused),
while a paused plan still works out what unpausing would do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reconciler import ownership
from reconciler.model import ImageCatalogue, NodeStatus
from reconciler.plan import ActionKind, Plan, drain_meta, plan
from reconciler.spec import PoolSpec
from tests.worlds import NOW, instance, node, ready_member, spec, world

OLD = "bbbbb"
UNTIL = (
    "; no launch and no new removal is planned until the pool's `image` names one the "
    "daemon offers (see `multipass find`)"
)


def said(p: Plan) -> list[tuple[str, str, str]]:
    return [(a.kind.value, a.instance, a.reason) for a in p.actions]


def name(s: PoolSpec, i: int, thash: str | None = None) -> str:
    return ownership.instance_name(s.pool, thash or s.template_hash, i)


@pytest.mark.parametrize(
    ("seen", "problem"),
    [
        (
            {"refused_images": {"24.04": "remote 'x' is unknown"}},
            "image '24.04': multipassd refused it (remote 'x' is unknown)",
        ),
        (
            {"images": ImageCatalogue(frozenset({"22.04"}))},
            "image '24.04': multipassd does not offer it (its `find` does not list it)",
        ),
    ],
    ids=["refused", "not offered"],
)
def test_an_image_the_daemon_will_not_launch_launches_nothing_and_says_why(
    seen: dict[str, Any], problem: str
) -> None:
    s = spec(min=2, max=5, image="24.04")
    p = plan(s, dataclasses.replace(world(), **seen), NOW)
    assert p.image_problem == problem
    assert p.actions == ()
    assert p.notes == (problem + UNTIL,)


def test_a_refusal_is_named_even_when_the_catalogue_does_not_list_the_image() -> None:
    s = spec(min=1, max=5, image="24.04")
    observed = dataclasses.replace(
        world(), images=ImageCatalogue(frozenset()), refused_images={"24.04": "no such image"}
    )
    assert (
        plan(s, observed, NOW).image_problem
        == "image '24.04': multipassd refused it (no such image)"
    )


def test_an_offered_image_and_a_refusal_of_another_one_launch_as_usual() -> None:
    s = spec(min=2, max=5, image="24.04")
    observed = dataclasses.replace(
        world(),
        images=ImageCatalogue(frozenset({"24.04"})),
        refused_images={"22.04": "no such image"},
    )
    p = plan(s, observed, NOW)
    assert p.image_problem is None
    assert p.notes == ()
    assert [a.kind for a in p.actions] == [ActionKind.LAUNCH, ActionKind.LAUNCH]


def test_with_an_image_problem_removals_under_way_finish_and_nothing_new_is_removed() -> None:
    s = spec(min=0, max=5, image="24.04")
    # Drained by us: deleted. Drained but protected: its note follows the image's.
    done, ndone = ready_member(s, 0)
    ndone = dataclasses.replace(
        ndone, eligible=False, drain_meta=drain_meta(s, "t"), last_drain_status="complete"
    )
    kept, nkept = ready_member(s, 1)
    nkept = dataclasses.replace(
        nkept,
        eligible=False,
        drain_meta=drain_meta(s, "t"),
        last_drain_status="complete",
        meta={**nkept.meta, ownership.META_PROTECT: "true"},
    )
    # Outdated and in excess (min 0): neither replaced nor scaled in while no launch can be.
    old, nold = ready_member(s, 2, thash=OLD)
    gone = node(name(s, 3), status=NodeStatus.DOWN)  # the VM is gone: purged
    observed = dataclasses.replace(
        world([done, kept, old], [ndone, nkept, nold, gone]),
        refused_images={"24.04": "no such image"},
    )
    p = plan(s, observed, NOW)
    assert sorted(said(p)) == [
        ("delete", name(s, 0), "drain complete"),
        ("purge-node", name(s, 3), "instance gone, node down"),
    ]
    assert p.notes == (
        "image '24.04': multipassd refused it (no such image)" + UNTIL,
        f"{name(s, 1)}: drained but protected (multipass-reconciler.protect); not deleted",
    )


def test_a_paused_plan_keeps_what_unpausing_would_do_on_the_side() -> None:
    s = spec(min=3, max=5, paused=True)
    ready = ready_member(s, 0)
    done, ndone = ready_member(s, 1)
    ndone = dataclasses.replace(
        ndone, eligible=False, drain_meta=drain_meta(s, "t"), last_drain_status="complete"
    )
    observed = world([ready[0], done], [ready[1], ndone])
    p = plan(s, observed, NOW)
    assert p.actions == ()
    assert p.notes == ("paused: the pool's `paused` item is true; no action is planned",)
    # Unpaused: the drained member deleted, and the two launches the pool lacks.
    assert [(a.kind.value, a.instance) for a in p.paused_actions] == [
        ("delete", name(s, 1)),
        ("launch", name(s, 2)),
        ("launch", name(s, 3)),
    ]
    # A delete already under way is not what unpausing would start again.
    p = plan(s, observed, NOW, inflight=[("delete", name(s, 1))])
    assert [(a.kind.value, a.instance) for a in p.paused_actions] == [
        ("launch", name(s, 2)),
        ("launch", name(s, 3)),
    ]


def test_a_paused_plan_reports_no_note_or_outcome_of_what_it_did_not_plan() -> None:
    s = spec(min=0, max=5, paused=True, max_unhealthy=0, unhealthy_timeout="5m")
    kept, nkept = ready_member(s, 0)
    nkept = dataclasses.replace(
        nkept,
        eligible=False,
        drain_meta=drain_meta(s, "t"),
        last_drain_status="complete",
        meta={**nkept.meta, ownership.META_PROTECT: "true"},
    )
    sick = node(name(s, 1), status=NodeStatus.DOWN, status_age=400)
    p = plan(s, world([kept, instance(name(s, 1))], [nkept, sick]), NOW)
    assert p.notes == ("paused: the pool's `paused` item is true; no action is planned",)
    assert p.short_circuit is None and p.blocked == () and p.stalled is None
