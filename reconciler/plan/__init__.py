"""The planner package: one pool's desired state and the observed world in, a Plan out.

Each module owns one concern and is a small pure function (or a few) tested on
its own; ``planner.plan`` puts them together:

* ``model``: the records shared by all steps (Member, Action, Plan, PoolWorld, Resources);
* ``membership``: instances and nodes into members, only what is provably ours;
* ``health``: each member's phase, and whether (and why) it is unhealthy;
* ``placement``: which host a launch goes to, within each host's capacity;
* ``removals``: finishing what is under way (deletes after drains, purges);
* ``rollout``: launches and removals within the surge / unavailable budgets;
* ``scale_in``: which members go first when the pool shrinks (one function per strategy).
"""

from reconciler.model import Observed as Observed
from reconciler.plan.health import count_phases, max_unhealthy_for
from reconciler.plan.membership import group_by_pool, is_our_drain, is_our_node, join
from reconciler.plan.model import (
    SERVING_PHASES,
    Action,
    ActionKind,
    Member,
    Phase,
    Plan,
    PoolWorld,
    Resources,
)
from reconciler.plan.planner import autoscale, desired_count, image_refusal, plan
from reconciler.plan.removals import drain_meta

__all__ = [
    "SERVING_PHASES",
    "Action",
    "ActionKind",
    "Member",
    "Observed",
    "Phase",
    "Plan",
    "PoolWorld",
    "Resources",
    "autoscale",
    "count_phases",
    "desired_count",
    "drain_meta",
    "group_by_pool",
    "image_refusal",
    "is_our_drain",
    "is_our_node",
    "join",
    "max_unhealthy_for",
    "plan",
]
