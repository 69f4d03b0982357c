"""Which Nomad nodes a pool may call its own (plan.is_our_node, and join doing the same).

The name is the mark (node list stubs carry no meta); a known pool meta naming
another pool vetoes. Nothing else is ever touched.
"""

from __future__ import annotations

import dataclasses

from reconciler import ownership
from reconciler.model import NodeStatus
from reconciler.plan import is_our_node, plan
from tests.worlds import NOW, instance, node, spec, world

S = spec()
OURS = ownership.instance_name("web", S.template_hash, 0)


def test_a_node_named_as_our_instance_is_ours() -> None:
    assert is_our_node(S, node(OURS))
    stub = dataclasses.replace(node(OURS), meta={})  # a list stub: no meta at all
    assert is_our_node(S, stub)


def test_a_name_of_another_shape_or_pool_is_not() -> None:
    assert not is_our_node(S, node("nomad-server-1"))
    assert not is_our_node(S, node(ownership.instance_name("db", S.template_hash, 0), "db"))
    assert not is_our_node(S, node("web-AAAAA-0"))  # not a hash of ours


def test_a_pool_meta_naming_another_pool_vetoes() -> None:
    assert not is_our_node(S, node(OURS, pool="db"))
    assert is_our_node(S, node(OURS, pool="web"))


def test_join_ignores_a_node_of_our_shape_that_says_it_is_another_pools() -> None:
    foreign = node(OURS, pool="db", status=NodeStatus.DOWN)
    p = plan(S, world([], [foreign]), NOW)
    assert p.members == ()
    assert p.counts["node-only"] == 0
    # Ours by name only (a list stub), with our instance: a member.
    p = plan(S, world([instance(OURS)], [dataclasses.replace(node(OURS), meta={})]), NOW)
    assert [m.name for m in p.members] == [OURS]


def test_a_node_read_in_full_without_our_pool_meta_is_not_purged_and_the_plan_says_why() -> None:
    bare = dataclasses.replace(
        node(OURS, status=NodeStatus.DOWN), meta={"other": "x"}, detailed=True
    )
    empty = spec(min=0)  # nothing to launch: only what the node record asks for
    p = plan(empty, world([], [bare]), NOW)
    assert p.actions == ()
    assert p.notes == (
        f"node {OURS} ({bare.id}) is not purged: its meta carries no multipass-reconciler.pool=web",
    )
    # Read in full with our pool meta: purged.
    ours = dataclasses.replace(node(OURS, status=NodeStatus.DOWN), detailed=True)
    assert [a.kind.value for a in plan(empty, world([], [ours]), NOW).actions] == ["purge-node"]
