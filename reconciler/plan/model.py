"""The planner's records: what it reads besides the spec and what it answers with.

Shared by every step of the planner and by its callers; no logic beyond small
properties, so each step can be read and tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from reconciler.model import Allocation, Instance, Node
from reconciler.ownership import DEFAULT_HOST
from reconciler.scaling.decide import Decision


class ActionKind(StrEnum):
    LAUNCH = "launch"
    DRAIN = "drain"
    DELETE = "delete"
    PURGE_NODE = "purge-node"


@dataclass(frozen=True, slots=True)
class Action:
    """One idempotent step. ``instance`` is also the Nomad node's name."""

    kind: ActionKind
    instance: str
    reason: str
    node_id: str | None = None
    allocations: int = 0
    deadline_s: float | None = None
    # The host a launch goes to or a delete is sent to (drains and purges: the member's).
    host: str = DEFAULT_HOST

    @property
    def key(self) -> tuple[str, str]:
        """Identity for in-flight tracking: one action per kind and target at a time."""
        if self.kind is ActionKind.PURGE_NODE and self.node_id is not None:
            return (self.kind.value, self.node_id)
        return (self.kind.value, self.instance)


class Phase(StrEnum):
    PENDING = "pending"  # launched, not (yet) a ready node
    READY = "ready"  # node ready and eligible: serves work
    DOWN = "down"  # node down or disconnected, not yet unhealthy
    HELD = "held"  # ineligible or drained by someone else: never touched
    DRAINING = "draining"  # our drain in progress
    DRAINED = "drained"  # our drain complete or past its deadline: delete next
    DELETING = "deleting"  # instance deleted but not purged, or delete in flight
    NODE_ONLY = "node-only"  # instance gone, node still registered


SERVING_PHASES = frozenset({Phase.PENDING, Phase.READY, Phase.DOWN, Phase.HELD})


@dataclass(slots=True)
class NodeUsage:
    """What live allocations hold on one node."""

    count: int = 0
    non_system: int = 0
    cpu_mhz: int = 0
    memory_mb: int = 0

    def add(self, alloc: Allocation) -> None:
        self.count += 1
        self.non_system += alloc.job_type != "system"
        self.cpu_mhz += alloc.cpu_mhz
        self.memory_mb += alloc.memory_mb


NO_USAGE = NodeUsage()  # shared by every member without a node or allocations: never added to


class Member(NamedTuple):
    """One instance/node pair of the pool, built afresh on every pass.

    ``host``: where it is (the daemon that listed it; else the host its name says).
    ``frozen``: that host's daemon could not be read this pass, so the instance is
    unknown: it counts by its node, and nothing that needs the daemon is planned for
    it. ``lost``: frozen, and its node down past ``unhealthy_timeout``: gone with its
    host, replaced elsewhere. ``displaced``: why it must move to another host (its host
    is evacuated, or no longer among the pool's hosts); replaced like an outdated one.
    """

    name: str
    template_hash: str
    ordinal: int
    phase: Phase
    instance: Instance | None
    node: Node | None
    outdated: bool
    protected: bool
    usage: NodeUsage = NO_USAGE  # the live allocations on its node
    unhealthy: str | None = None  # why, when it is
    host: str = DEFAULT_HOST
    frozen: bool = False
    lost: bool = False
    displaced: str | None = None

    @property
    def live_allocations(self) -> int:
        return self.usage.count

    @property
    def non_system_allocations(self) -> int:
        return self.usage.non_system

    @property
    def load(self) -> float:
        """Allocated share of the node, CPU and memory averaged (least_busy's key).

        Computed when asked: only the least_busy scale-in order reads it.
        """
        if self.node is None or not self.usage.count:
            return 0.0
        cpu = self.usage.cpu_mhz / self.node.cpu_mhz if self.node.cpu_mhz else 0.0
        memory = self.usage.memory_mb / self.node.memory_mb if self.node.memory_mb else 0.0
        return (cpu + memory) / 2

    @property
    def created_at(self) -> float | None:
        return self.instance.created_at if self.instance else None

    @property
    def to_replace(self) -> bool:
        """Unhealthy, outdated or displaced: a replacement is due (budgets permitting)."""
        return self.unhealthy is not None or self.outdated or self.displaced is not None


@dataclass(frozen=True)
class Plan:
    pool: str
    index: int
    template_hash: str
    desired: int
    desired_reason: str
    actions: tuple[Action, ...]
    members: tuple[Member, ...]
    counts: Mapping[str, int]
    notes: tuple[str, ...] = ()
    paused: bool = False
    scaling: Decision | None = None  # the policy's decision, for pools with a policy
    # Protected or held members that are outdated or unhealthy: never replaced, so
    # the rollout cannot finish while they stay as they are.
    blocked: tuple[str, ...] = ()
    # The current-generation instance that never joined while a rollout was under
    # way: the rollout waits for a person (see rollout.stalled_by).
    stalled: str | None = None
    # Why remediation is short-circuited (more unhealthy than max_unhealthy); None: it is not.
    short_circuit: str | None = None
    # Why the daemon will not launch the pool's image (a spec problem); None: it will.
    image_problem: str | None = None
    # A paused pool: what it would do if it were not (shown, never executed).
    paused_actions: tuple[Action, ...] = ()
    # Launches the pool needs that fit on none of its hosts, and why; None: all fit.
    insufficient_capacity: str | None = None
    # Hosts that could not be read, whose members' actions wait for them.
    waiting_on_hosts: tuple[str, ...] = ()
    # Why the pool's launches wait for the cluster's join settings (the controller's
    # with_discovered_servers); None: they do not.
    launches_held: str | None = None
    # Whether the fleet has named hosts: plan lines then say where each action goes.
    show_hosts: bool = False

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)


@dataclass(frozen=True, slots=True)
class PoolWorld:
    """The part of the observed world named as one pool's: what its plan reads.

    ``nodes`` leaves out nodes whose client meta names another pool; ``allocations``
    are the live ones on ``nodes``.
    """

    instances: tuple[Instance, ...] = ()
    nodes: tuple[Node, ...] = ()
    allocations: tuple[Allocation, ...] = ()


@dataclass(frozen=True, slots=True)
class Resources:
    """CPUs, memory and disk bytes: what a host offers, what members take."""

    cpus: int = 0
    memory: int = 0
    disk: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory + other.memory, self.disk + other.disk)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpus - other.cpus, self.memory - other.memory, self.disk - other.disk)

    def __mul__(self, n: int) -> Resources:
        return Resources(self.cpus * n, self.memory * n, self.disk * n)

    def holds(self, other: Resources) -> bool:
        return self.cpus >= other.cpus and self.memory >= other.memory and self.disk >= other.disk
