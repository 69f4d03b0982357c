"""The plumbing every table shares: one raft-like index, listeners, the event queue, time.

After nomad/state/state_store.go: each write happens at a new index; each table
records the index of its latest write (what X-Nomad-Index answers for a list);
listeners hear every change, which is how the server wakes blocking queries.
Events (a node turning ready, a lock lapsing, an allocation finishing) are
kept in time order and processed by ``tick()``, each at its own time.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.clock import Clock

if TYPE_CHECKING:
    from reconciler.sim.nomad_state.acl import Policy
    from reconciler.sim.nomad_state.allocations import SimAlloc, SimEval
    from reconciler.sim.nomad_state.jobs import SimJob
    from reconciler.sim.nomad_state.nodes import SimNode
    from reconciler.sim.nomad_state.variables import SimVariable

TABLES = ("variables", "nodes", "jobs", "allocs", "evals")


class SimError(Exception):
    """An answer Nomad gives with an HTTP error status and a plain-text body."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        self.status = status
        self.message = message
        self.body = body
        super().__init__(f"{status}: {message}")


class SimConflict(SimError):
    """A 409 whose body is a variable: the current one, or Nomad's zero-valued placeholder."""

    def __init__(self, variable: SimVariable, message: str = "conflict") -> None:
        super().__init__(409, message)
        self.variable = variable


@dataclass(frozen=True)
class Change:
    """One object written at ``index``: what listeners (the server's watches) hear."""

    table: str
    key: str
    index: int
    namespace: str = ""
    node_id: str = ""


class StateBase:
    """The tables and the clock-driven event queue; the families of tables are mixins on it."""

    def __init__(self, clock: Clock, rng: random.Random | None = None) -> None:
        self.clock = clock
        self.rng = rng or random.Random(0)
        self.index = 1
        self.table_index: dict[str, int] = dict.fromkeys(TABLES, 1)
        self.tokens: dict[str, Policy] = {}
        self.variables: dict[tuple[str, str], SimVariable] = {}
        self.nodes: dict[str, SimNode] = {}
        self.allocs: dict[str, SimAlloc] = {}
        self.evals: dict[str, SimEval] = {}
        self.jobs: dict[tuple[str, str], SimJob] = {}
        self.listeners: list[Callable[[Change], None]] = []
        self._events: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = 0
        self._t = clock.now()
        self._ticking = False

    if TYPE_CHECKING:
        # Calls across families of tables, declared for the type checker only (so
        # the mixins' own definitions win at run time). Each has one home:
        def _schedule(self) -> None: ...  # jobs.py: placements follow capacity

        def _drain_progress(self, node: SimNode) -> None: ...  # nodes.py: drains

    def now(self) -> float:
        """The model's time: the event being processed, else the clock's."""
        return self._t if self._ticking else max(self._t, self.clock.now())

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def subscribe(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``listener`` on every change; returns the function that unsubscribes."""
        self.listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)

        return unsubscribe

    def _commit(self, table: str, objects: Iterable[tuple[str, str, str]]) -> int:
        """Write objects (key, namespace, node_id) of one table at a new index."""
        self.index += 1
        idx = self.index
        self.table_index[table] = idx
        changes = [Change(table, key, idx, ns, node) for key, ns, node in objects]
        for change in changes:
            for listener in list(self.listeners):
                listener(change)
        return idx

    def _at(self, when: float, kind: str, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, kind, args))

    def tick(self) -> None:
        """Process every event due by ``clock.now()``, each at its own time."""
        if self._ticking:
            return
        self._ticking = True
        try:
            now = self.clock.now()
            while self._events and self._events[0][0] <= now:
                when, _, kind, args = heapq.heappop(self._events)
                self._t = max(self._t, when)
                getattr(self, f"_on_{kind}")(*args)
            self._t = max(self._t, now)
        finally:
            self._ticking = False

    def next_event_at(self) -> float | None:
        """When the next scheduled change happens (for drivers that jump the clock)."""
        return self._events[0][0] if self._events else None
