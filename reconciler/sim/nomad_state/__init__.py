"""A pure, clock-driven model of a Nomad cluster: what the reconciler can observe of one.

No I/O and no asyncio: ``nomad_server.py`` puts HTTP in front of it. Time comes
from a ``Clock``; randomness (IDs) from a seeded ``random.Random``, so a run is
reproducible. ``tick()`` brings the model up to ``clock.now()``, processing due
events in time order (so a big clock jump still drains node by node, alloc by
alloc, each at its own time).

What it models, after Nomad's own behaviour (nomad/state, nomad/*_endpoint.go):

* One raft-like index incremented by every write; each object has
  CreateIndex/ModifyIndex; per-table indexes ("variables", "nodes", "allocs",
  "evals") answer X-Nomad-Index. Listeners hear every change (table, key), which
  is how the server wakes blocking queries; the model stays synchronous.
* Variables with check-and-set, prefix listing, and locks. A lock lapses when
  not renewed within 2 x TTL (Nomad doubles the TTL as a grace period), and the
  variable stays locked for LockDelay after that; only then can another holder
  acquire it. A release frees it at once.
* ACLs (off by default): tokens with variable path rules, node read/write and
  namespace read-job; 403 "Permission denied" / "ACL token not found".
* Nodes register "initializing", turn "ready" after ``init_seconds``; when their
  heartbeats stop (``node_lost``) they go "down" after ``heartbeat_timeout`` and
  their allocations become "lost" (and are replaced elsewhere).
* Drains take time: per job, one service allocation at a time is migrated (its
  replacement placed elsewhere, the old one finishing ``migrate_seconds``
  later); batch allocations are waited for; system allocations go last unless
  ignored; at the deadline whatever is left is stopped. A finished drain clears
  DrainStrategy and records LastDrain (status, the drain's Meta), leaving the
  node ineligible, as Nomad does.
* Jobs place allocations by bin-packing on ready, eligible, non-draining nodes
  of the right datacenter, class and node pool with room; what cannot be placed
  becomes a blocked evaluation (with the resources asked), retried whenever
  capacity may have appeared.

The state is split as Nomad splits its state store, one module per family of
tables, so that each behaviour has one home: ``variables`` (variables and
locks), ``nodes`` (nodes and drains), ``jobs`` (jobs and the scheduler),
``allocations`` (allocations and evaluations), ``acl`` (tokens and policies);
``base`` holds the index, the listeners and the event queue they share.
"""

from __future__ import annotations

import random

from reconciler.clock import Clock
from reconciler.sim.nomad_state.acl import MANAGEMENT, AclTables, Policy
from reconciler.sim.nomad_state.allocations import AllocationTables, SimAlloc, SimEval, SimMetric
from reconciler.sim.nomad_state.base import TABLES, Change, SimConflict, SimError
from reconciler.sim.nomad_state.jobs import JobTables, SimJob
from reconciler.sim.nomad_state.nodes import (
    NODE_DOWN,
    NODE_INITIALIZING,
    NODE_READY,
    NodeTables,
    SimDrain,
    SimLastDrain,
    SimNode,
)
from reconciler.sim.nomad_state.variables import (
    DEFAULT_LOCK_DELAY,
    DEFAULT_LOCK_TTL,
    LOCK_TTL_GRACE,
    LOCK_TTL_MAX,
    LOCK_TTL_MIN,
    SimLock,
    SimVariable,
    VariableTables,
)

__all__ = [
    "DEFAULT_LOCK_DELAY",
    "DEFAULT_LOCK_TTL",
    "LOCK_TTL_GRACE",
    "LOCK_TTL_MAX",
    "LOCK_TTL_MIN",
    "MANAGEMENT",
    "NODE_DOWN",
    "NODE_INITIALIZING",
    "NODE_READY",
    "TABLES",
    "Change",
    "NomadState",
    "Policy",
    "SimAlloc",
    "SimConflict",
    "SimDrain",
    "SimError",
    "SimEval",
    "SimJob",
    "SimLastDrain",
    "SimLock",
    "SimMetric",
    "SimNode",
    "SimVariable",
]


class NomadState(AclTables, VariableTables, NodeTables, JobTables, AllocationTables):
    def __init__(
        self,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        heartbeat_timeout: float = 30.0,
        init_seconds: float = 5.0,
        migrate_seconds: float = 10.0,
        alloc_start_seconds: float = 2.0,
        acl: bool = False,
        region: str = "global",
        lock_clock: Clock | None = None,
    ) -> None:
        """``lock_clock``: what lock TTLs and lock-delays run on (see ``variables``)."""
        super().__init__(clock, rng)
        self._init_locks(lock_clock or clock)
        self.heartbeat_timeout = heartbeat_timeout
        self.init_seconds = init_seconds
        self.migrate_seconds = migrate_seconds
        self.alloc_start_seconds = alloc_start_seconds
        self.region = region
        self.acl_enabled = acl
        self.anonymous = Policy()
        self._addresses = 0
