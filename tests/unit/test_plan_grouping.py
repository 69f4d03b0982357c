"""A pass groups the world by pool once; each pool's plan must not change for it."""

from __future__ import annotations

from reconciler import ownership
from reconciler.plan import group_by_pool, plan
from tests.worlds import NOW, alloc, node, ready_member, spec, world


def test_a_pool_plans_the_same_beside_other_pools_and_foreign_machines() -> None:
    web, db = spec("web", min=2, max=5), spec("db", min=1, max=3)
    web_members = [ready_member(web, i) for i in range(4)]  # two above min: drains
    db_members = [ready_member(db, i) for i in range(1)]
    alone = world(
        [i for i, _ in web_members],
        [n for _, n in web_members],
        [alloc(n.id, k) for _, n in web_members for k in range(2)],
    )
    # A node named as web's but whose client meta says db: neither pool's.
    vetoed = node(ownership.instance_name("web", web.template_hash, 9), "db")
    crowded = world(
        [*alone.instances, *(i for i, _ in db_members)],
        [*alone.nodes, *(n for _, n in db_members), vetoed, node("laptop", "web")],
        [*alone.allocations, alloc(db_members[0][1].id), alloc(vetoed.id), alloc("laptop")],
    )
    worlds = group_by_pool(crowded)
    assert set(worlds) == {"web", "db"}
    assert vetoed not in worlds["web"].nodes and vetoed not in worlds["db"].nodes
    assert len(worlds["web"].allocations) == 8 and len(worlds["db"].allocations) == 1

    expected = plan(web, alone, NOW)
    assert len(expected.actions) == 2
    assert plan(web, crowded, NOW, world=worlds["web"]) == expected
    assert plan(web, crowded, NOW) == expected  # grouped inside when not given
    assert plan(db, crowded, NOW, world=worlds["db"]).actions == ()
