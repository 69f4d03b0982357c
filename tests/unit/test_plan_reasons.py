"""What `reconciler plan` says: every action's reason and every note, word for word.

The reasons are what a person reads before applying a plan (and what a drain's
meta records on the node); the notes say why something is not done. Pinned
through ``plan(...)`` on hand-built worlds, one situation per test.
"""

from __future__ import annotations

import dataclasses

import pytest

from reconciler import ownership
from reconciler.model import InstanceState, NodeStatus
from reconciler.plan import Action, ActionKind, Phase, Plan, desired_count, plan
from reconciler.spec import PoolSpec
from tests.worlds import NOW, alloc, instance, node, ready_member, spec, world

OLD = "bbbbb"


def said(p: Plan) -> list[tuple[str, str, str]]:
    return [(a.kind.value, a.instance, a.reason) for a in p.actions]


def name(s: PoolSpec, i: int, thash: str | None = None) -> str:
    return ownership.instance_name(s.pool, thash or s.template_hash, i)


def test_the_desired_count_says_where_it_comes_from() -> None:
    assert desired_count(spec(min=2, max=5)) == (2, "min = 2 (no count set)")
    assert desired_count(spec(min=2, max=5, count=4)) == (4, "count = 4")
    assert desired_count(spec(min=2, max=5, count=9)) == (5, "count 9 clamped to [2, 5]")
    p = plan(spec(min=2, max=5, count=9), world(), NOW)
    assert (p.desired, p.desired_reason) == (5, "count 9 clamped to [2, 5]")


def test_scale_up_and_surge_reasons() -> None:
    s = spec(min=2, max=5)
    assert said(plan(s, world(), NOW)) == [
        ("launch", name(s, 0), "scale up: 0 of 2 members"),
        ("launch", name(s, 1), "scale up: 1 of 2 members"),
    ]
    i0, n0 = ready_member(s, 0, thash=OLD)
    assert said(plan(spec(min=1, max=5), world([i0], [n0]), NOW)) == [
        ("launch", name(s, 0), "surge: replacing 1 outdated or unhealthy members")
    ]


def test_scale_down_reasons_and_the_drain_they_start() -> None:
    s = spec(min=1, max=5, drain_deadline="15m")
    members = [ready_member(s, i) for i in range(2)]
    busy = members[1][1]
    observed = dataclasses.replace(
        world([m[0] for m in members], [m[1] for m in members]),
        allocations=(alloc(busy.id, 0), alloc(busy.id, 1)),
    )
    p = plan(s, observed, NOW)
    assert p.actions == (
        Action(
            ActionKind.DRAIN,
            name(s, 0),
            "scale down: 2 members, 1 desired (least_busy)",
            node_id=members[0][1].id,
            allocations=0,
            deadline_s=900.0,
        ),
    )
    # A member that never joined goes first, deleted (nothing to drain).
    booting = instance(name(s, 2), age=10)
    observed = world([m[0] for m in members] + [booting], [m[1] for m in members])
    p = plan(spec(min=2, max=5), observed, NOW)
    assert said(p) == [
        ("delete", name(s, 2), "scale down: 3 members, 2 desired (not yet joined)"),
    ]


def test_outdated_reasons() -> None:
    s = spec(min=1, max=5, max_surge=0, max_unavailable=1)
    i0, n0 = ready_member(s, 0, thash=OLD)
    never = instance(name(s, 1, OLD), age=10)
    p = plan(s, world([i0, never], [n0]), NOW)
    assert sorted(said(p)) == [
        ("delete", name(s, 1, OLD), "outdated: built from an older spec, never joined"),
        ("drain", name(s, 0, OLD), f"outdated: template hash {OLD} != {s.template_hash}"),
    ]


def test_removals_under_way_and_their_reasons() -> None:
    s = spec(min=0, max=5, drain_deadline="1h")
    # Drained by us: Nomad ended the drain, the node stays ineligible.
    i0, n0 = ready_member(s, 0)
    n0 = dataclasses.replace(n0, eligible=False, drain_meta=_ours(s), last_drain_status="complete")
    # Still busy, past the deadline Nomad reported.
    i1, n1 = ready_member(s, 1)
    n1 = dataclasses.replace(
        n1, draining=True, eligible=False, drain_meta=_ours(s), drain_deadline_at=NOW - 1
    )
    # Deleted, not purged.
    i2 = dataclasses.replace(instance(name(s, 2)), state=InstanceState.DELETED)
    # The VM is gone; its node is down.
    n3 = node(name(s, 3), status=NodeStatus.DOWN)
    observed = dataclasses.replace(
        world([i0, i1, i2], [n0, n1, n3]), allocations=(alloc(n1.id, 0),)
    )
    p = plan(s, observed, NOW)
    assert sorted(said(p)) == [
        ("delete", name(s, 0), "drain complete"),
        ("delete", name(s, 1), "drain deadline passed"),
        ("delete", name(s, 2), "instance is deleted but not purged"),
        ("purge-node", name(s, 3), "instance gone, node down"),
    ]
    [late] = [a for a in p.actions if a.instance == name(s, 1)]
    assert (late.node_id, late.allocations) == (n1.id, 1)
    assert p.counts == {
        "pending": 0,
        "ready": 0,
        "down": 0,
        "held": 0,
        "draining": 0,
        "drained": 2,
        "deleting": 1,
        "node-only": 1,
        "outdated": 0,
        "unhealthy": 0,
        "protected": 0,
        "lost": 0,
        "displaced": 0,
        "instances": 3,
    }


def test_a_drain_of_ours_that_completed_leaves_the_node_ineligible_and_drained() -> None:
    s = spec(min=0, max=5)
    i0, n0 = ready_member(s, 0)
    n0 = dataclasses.replace(n0, eligible=False, drain_meta=_ours(s), last_drain_status="complete")
    p = plan(s, world([i0], [n0]), NOW)
    assert p.members[0].phase is Phase.DRAINED
    assert said(p) == [("delete", name(s, 0), "drain complete")]


def test_unhealthy_reasons() -> None:
    s = spec(min=1, max=5, join_timeout="10m", unhealthy_timeout="5m")
    never = instance(name(s, 0), age=601)
    [m] = plan(s, world([never], []), NOW).members
    assert m.unhealthy == "did not join Nomad within 10m"
    init = node(name(s, 0), status=NodeStatus.INITIALIZING)
    [m] = plan(s, world([never], [init]), NOW).members
    assert m.unhealthy == "node not ready within 10m"
    stopped = dataclasses.replace(
        instance(name(s, 0), state=InstanceState.STOPPED), broken_since=NOW - 301
    )
    [m, *_] = plan(s, world([stopped], [node(name(s, 0))]), NOW).members
    assert m.unhealthy == "instance STOPPED for over 5m"
    hours = spec(min=1, max=5, unhealthy_timeout="2h")
    down = node(name(hours, 0), status=NodeStatus.DOWN, status_age=7201)
    [m, *_] = plan(hours, world([instance(name(hours, 0))], [down]), NOW).members
    assert m.unhealthy == "node down for over 2h"
    odd = spec(min=1, max=5, unhealthy_timeout="90s")
    down = node(name(odd, 0), status=NodeStatus.DOWN, status_age=91)
    [m, *_] = plan(odd, world([instance(name(odd, 0))], [down]), NOW).members
    assert m.unhealthy == "node down for over 90s"


def test_an_unhealthy_member_is_replaced_then_removed_with_its_reason() -> None:
    s = spec(min=1, max=5, unhealthy_timeout="5m")
    sick = node(name(s, 0), status=NodeStatus.DOWN, status_age=400)
    i1, n1 = ready_member(s, 1)  # its replacement, already serving
    p = plan(s, world([instance(name(s, 0)), i1], [sick, n1]), NOW)
    assert said(p) == [("delete", name(s, 0), "unhealthy: node down for over 5m")]


def test_notes_for_what_is_not_done() -> None:
    s = spec(min=0, max=5)
    i0, n0 = ready_member(s, 0)
    protected = dataclasses.replace(
        n0,
        draining=True,
        eligible=False,
        drain_meta=_ours(s),
        meta={**n0.meta, ownership.META_PROTECT: "true"},
    )
    p = plan(s, world([i0], [protected]), NOW)
    assert p.actions == ()
    assert p.notes == (
        f"{name(s, 0)}: drained but protected (multipass-reconciler.protect); not deleted",
    )

    old = spec(min=2, max=5)
    a, na = ready_member(old, 0, thash=OLD)
    b, nb = ready_member(old, 1, thash=OLD)
    na = dataclasses.replace(na, meta={**na.meta, ownership.META_PROTECT: "true"})
    nb = dataclasses.replace(nb, eligible=False)  # cordoned by a person: held
    p = plan(old, world([a, b], [na, nb]), NOW)
    assert p.blocked == (name(old, 0, OLD), name(old, 1, OLD))
    assert p.notes == (
        f"protected members block replacement: {name(old, 0, OLD)}",
        f"held members (drained or ineligible by someone else) block replacement: "
        f"{name(old, 1, OLD)}",
    )


@pytest.mark.parametrize(
    ("size", "excess"),
    [(3, "2 more members are"), (2, "1 more member is")],  # the plural, and the singular
)
def test_a_pool_above_desired_that_cannot_shrink_says_so(size: int, excess: str) -> None:
    s = spec(min=1, max=5, scale_in="empty")
    members = [ready_member(s, i) for i in range(size)]
    observed = dataclasses.replace(
        world([m[0] for m in members], [m[1] for m in members]),
        allocations=tuple(alloc(m[1].id, i) for i, m in enumerate(members)),
    )
    p = plan(s, observed, NOW)
    assert p.actions == ()
    assert p.notes == (
        f"{excess} above desired but none can be removed now "
        "(scale_in empty, protected or held members)",
    )


def test_a_paused_pool_says_so_and_plans_nothing() -> None:
    p = plan(spec(min=3, paused=True), world(), NOW)
    assert p.paused and p.actions == ()
    assert p.notes == ("paused: the pool's `paused` item is true; no action is planned",)


def test_a_stalled_rollout_names_the_member_and_what_to_do() -> None:
    s = spec(min=1, max=5, join_timeout="10m")
    old, nold = ready_member(s, 0, thash=OLD)
    new = instance(name(s, 0), age=700)  # the current spec's VM never joined
    p = plan(s, world([old, new], [nold]), NOW)
    assert p.stalled == name(s, 0)
    assert p.actions == ()
    assert p.notes == (
        f"rollout stalled: {name(s, 0)} of the current spec did not join Nomad within 10m "
        "and no member of the current spec is ready; no outdated member is replaced until "
        f"the spec is fixed, or {name(s, 0)} is deleted to retry",
    )


def _ours(s: PoolSpec) -> dict[str, str]:
    from reconciler.plan import drain_meta

    return drain_meta(s, "test")


def test_every_launch_of_a_wider_surge_says_surge() -> None:
    s = spec(min=3, max=9, max_surge=2, max_unavailable=0)
    olds = [ready_member(s, i, thash=OLD) for i in (0, 1)]
    current = ready_member(s, 2)
    observed = world([*(i for i, _ in olds), current[0]], [*(n for _, n in olds), current[1]])
    assert [a for a in said(plan(s, observed, NOW)) if a[0] == "launch"] == [
        ("launch", name(s, 0), "surge: replacing 2 outdated or unhealthy members"),
        ("launch", name(s, 1), "surge: replacing 2 outdated or unhealthy members"),
    ]


def test_a_drains_meta_keeps_the_first_200_characters_of_its_reason() -> None:
    from reconciler.plan import drain_meta

    s = spec()
    meta = drain_meta(s, "x" * 199 + "yz")
    assert meta == {
        ownership.DRAIN_META_OWNER: ownership.DRAIN_META_OWNER_VALUE,
        ownership.DRAIN_META_POOL: "web",
        ownership.DRAIN_META_REASON: "x" * 199 + "y",
    }


def test_a_member_that_must_move_and_never_joined_says_both() -> None:
    from tests.worlds import host

    s = spec(min=1, max=5)
    booting = instance(ownership.instance_name("web", s.template_hash, 0, "host1"), age=10)
    hosts = [host("host1", evacuate=True), host("host2")]
    p = plan(s, world([booting], [], hosts=hosts), NOW)
    assert sorted(said(p)) == [
        ("delete", booting.name, "moved: host host1 is being evacuated, never joined"),
        (
            "launch",
            ownership.instance_name("web", s.template_hash, 0, "host2"),
            "surge: replacing 1 outdated or unhealthy members",
        ),
    ]


def test_blocking_members_are_listed_comma_separated() -> None:
    s = spec(min=4, max=9)
    pairs = [ready_member(s, i, thash=OLD) for i in range(4)]
    nodes = [n for _, n in pairs]
    for i in (0, 1):
        nodes[i] = dataclasses.replace(
            nodes[i], meta={**nodes[i].meta, ownership.META_PROTECT: "true"}
        )
    for i in (2, 3):
        nodes[i] = dataclasses.replace(nodes[i], eligible=False)  # cordoned by a person
    p = plan(s, world([i for i, _ in pairs], nodes), NOW)
    assert p.notes == (
        f"protected members block replacement: {name(s, 0, OLD)}, {name(s, 1, OLD)}",
        "held members (drained or ineligible by someone else) block replacement: "
        f"{name(s, 2, OLD)}, {name(s, 3, OLD)}",
    )


def test_a_protected_drained_member_does_not_hold_back_the_deletes_after_it() -> None:
    s = spec(min=0, max=5)
    kept, nkept = ready_member(s, 0)
    nkept = dataclasses.replace(
        nkept,
        eligible=False,
        drain_meta=_ours(s),
        last_drain_status="complete",
        meta={**nkept.meta, ownership.META_PROTECT: "true"},
    )
    done, ndone = ready_member(s, 1)
    ndone = dataclasses.replace(
        ndone, eligible=False, drain_meta=_ours(s), last_drain_status="complete"
    )
    p = plan(s, world([kept, done], [nkept, ndone]), NOW)
    assert said(p) == [("delete", name(s, 1), "drain complete")]
    assert p.notes == (
        f"{name(s, 0)}: drained but protected (multipass-reconciler.protect); not deleted",
    )


def test_a_stalled_rollout_still_names_the_members_that_block_replacement() -> None:
    s = spec(min=2, max=5, join_timeout="10m")
    plain, nplain = ready_member(s, 0, thash=OLD)
    kept, nkept = ready_member(s, 1, thash=OLD)
    nkept = dataclasses.replace(nkept, meta={**nkept.meta, ownership.META_PROTECT: "true"})
    new = instance(name(s, 0), age=700)  # the current spec's VM never joined
    p = plan(s, world([plain, kept, new], [nplain, nkept]), NOW)
    assert p.stalled == name(s, 0)
    assert p.blocked == (name(s, 1, OLD),)
    assert f"protected members block replacement: {name(s, 1, OLD)}" in p.notes
