"""Which members go first when a pool shrinks: one small pure function per strategy.

The strategies and their names are the Nomad Autoscaler's node selectors, so a
migrated policy keeps its meaning. Every ordering ends with the name as a tie
breaker so the choice is deterministic.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.plan.model import Member


def _least_busy(members: Sequence[Member]) -> list[Member]:
    return sorted(members, key=lambda m: (m.load, m.live_allocations, m.name))


def _empty(members: Sequence[Member]) -> list[Member]:
    # Only members with nothing running qualify; a pool may shrink by less than asked.
    return sorted((m for m in members if m.live_allocations == 0), key=lambda m: m.name)


def _empty_ignore_system(members: Sequence[Member]) -> list[Member]:
    return sorted((m for m in members if m.non_system_allocations == 0), key=lambda m: m.name)


def _newest(members: Sequence[Member]) -> list[Member]:
    # A member with no known creation time sorts as the oldest: never guessed to be new.
    return sorted(members, key=lambda m: (-(m.created_at or 0.0), m.name))


def _oldest(members: Sequence[Member]) -> list[Member]:
    return sorted(members, key=lambda m: (m.created_at or 0.0, m.name))


_ORDERINGS: dict[str, Callable[[Sequence[Member]], list[Member]]] = {
    "least_busy": _least_busy,
    "empty": _empty,
    "empty_ignore_system": _empty_ignore_system,
    "newest": _newest,
    "oldest": _oldest,
}


# The names a spec may give (spec.SCALE_IN_STRATEGIES validates against the same list).
STRATEGIES: tuple[str, ...] = tuple(_ORDERINGS)

_KEYS: dict[str, Callable[[Member], Any]] = {
    # attrgetter builds the key tuple in C: this runs over every member of a big pool.
    "least_busy": attrgetter("load", "live_allocations", "name"),
    "empty": attrgetter("name"),
    "empty_ignore_system": attrgetter("name"),
    "newest": lambda m: (-(m.created_at or 0.0), m.name),
    "oldest": lambda m: (m.created_at or 0.0, m.name),
}


def order_for_scale_in(
    strategy: str, members: Sequence[Member], limit: int | None = None
) -> list[Member]:
    """Members eligible under ``strategy``, first to remove first.

    With ``limit``, only the first ``limit`` (a partial sort: a pool of 10,000
    shrinking by 3 need not sort 10,000).
    """
    if limit is None or limit >= len(members):
        return _ORDERINGS[strategy](members)
    if strategy == "empty":
        members = [m for m in members if m.live_allocations == 0]
    elif strategy == "empty_ignore_system":
        members = [m for m in members if m.non_system_allocations == 0]
    if limit * 8 > len(members):
        # A heap pays per element kept: past about an eighth of the list, one C sort wins.
        return sorted(members, key=_KEYS[strategy])[:limit]
    return heapq.nsmallest(limit, members, key=_KEYS[strategy])


def order_for_replacement(strategy: str, members: Sequence[Member]) -> list[Member]:
    """All members, in the order a replacement takes them.

    A replacement (outdated or unhealthy) must reach every member, so strategies
    that only choose empty nodes order the rest after them, least busy first.
    """
    first = _ORDERINGS[strategy](members)
    chosen = {m.name for m in first}
    return first + _least_busy([m for m in members if m.name not in chosen])
