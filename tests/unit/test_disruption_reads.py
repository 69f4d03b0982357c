"""Nothing is drained or deleted on a node-list entry alone: which nodes need a full read."""

from __future__ import annotations

import dataclasses

from reconciler.controller import PoolPlan, unread_targets, without_unread_targets
from reconciler.model import Observed
from reconciler.plan import ActionKind, plan
from reconciler.pools import PoolVariable
from tests.worlds import NOW, ready_member, spec


def shrinking(detailed: bool) -> tuple[PoolPlan, Observed]:
    s = spec(min=1, max=3)
    members = [ready_member(s, i) for i in range(3)]
    nodes = tuple(dataclasses.replace(m[1], detailed=detailed) for m in members)
    observed = Observed(tuple(m[0] for m in members), nodes, (), at=NOW)
    variable = PoolVariable("web", "nomad/jobs/multipass-reconciler/pools/web", {}, 10)
    return PoolPlan(variable, s, plan(s, observed, NOW)), observed


def test_drain_targets_listed_only_are_held_back_with_a_note() -> None:
    pp, observed = shrinking(detailed=False)
    drains = [a for a in pp.plan.actions if a.kind is ActionKind.DRAIN]  # type: ignore[union-attr]
    assert len(drains) == 2
    assert unread_targets([pp], observed) == {a.node_id for a in drains}
    held = without_unread_targets(pp, observed)
    assert held.plan is not None and held.plan.actions == ()
    assert any("held back until their nodes are read in full" in n for n in held.plan.notes)


def test_read_targets_go_ahead_and_launches_never_wait() -> None:
    pp, observed = shrinking(detailed=True)
    assert unread_targets([pp], observed) == set()
    assert without_unread_targets(pp, observed) is pp
    s = spec(min=2, max=3)
    grow = PoolPlan(pp.variable, s, plan(s, Observed((), (), (), at=NOW), NOW))
    assert unread_targets([grow], observed) == set()  # launches touch no node


def test_a_pool_whose_node_records_still_await_their_purge_is_not_converged() -> None:
    from reconciler.controller import PassReport
    from tests.worlds import node

    s = spec(min=0, max=1)
    gone = node(f"web-{s.template_hash}-0")  # its VM was deleted; Nomad has not noticed yet
    observed = Observed((), (gone,), (), at=NOW)
    variable = PoolVariable("web", "nomad/jobs/multipass-reconciler/pools/web", {}, 10)
    pp = PoolPlan(variable, s, plan(s, observed, NOW))
    assert pp.plan is not None and pp.plan.actions == ()  # a ready node is not purged
    assert not PassReport(plans=[pp]).converged
    keep = spec(min=0, max=1, node_purge=False)
    kept = PoolPlan(variable, keep, plan(keep, observed, NOW))
    assert PassReport(plans=[kept]).converged  # records are kept on purpose: nothing to wait for
