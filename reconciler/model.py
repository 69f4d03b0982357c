"""The observed world, typed.

These are the planner's inputs. They are built by ``observe.py`` from the
clients' answers and carry only what planning needs, so the planner never
imports a client and can be fed generated worlds in property tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from reconciler.ownership import DEFAULT_HOST

_EMPTY: Mapping[str, str] = MappingProxyType({})


class InstanceState(StrEnum):
    """multipassd's instance states."""

    UNKNOWN = "UNKNOWN"
    RUNNING = "RUNNING"
    STARTING = "STARTING"
    RESTARTING = "RESTARTING"
    STOPPED = "STOPPED"
    DELETED = "DELETED"
    DELAYED_SHUTDOWN = "DELAYED_SHUTDOWN"
    SUSPENDING = "SUSPENDING"
    SUSPENDED = "SUSPENDED"
    UNAVAILABLE = "UNAVAILABLE"


# States in which a VM is not doing its job and will not without help.
BROKEN_STATES = frozenset(
    {
        InstanceState.STOPPED,
        InstanceState.SUSPENDED,
        InstanceState.UNKNOWN,
        InstanceState.UNAVAILABLE,
    }
)


@dataclass(frozen=True, slots=True)
class Instance:
    """A Multipass instance as multipassd lists it.

    ``broken_since``: when the observer first saw it in one of BROKEN_STATES
    (multipassd reports no state-change time); None while it is not broken.
    ``host``: the host whose daemon listed it.
    """

    name: str
    state: InstanceState
    created_at: float | None = None
    image: str = ""
    ipv4: tuple[str, ...] = ()
    broken_since: float | None = None
    host: str = DEFAULT_HOST


class NodeStatus(StrEnum):
    INITIALIZING = "initializing"
    READY = "ready"
    DOWN = "down"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class Node:
    """A Nomad client node.

    ``drain_meta`` is the Meta of the drain in progress or, when none is,
    of the last drain (Nomad keeps it in LastDrain). ``last_drain_status`` is
    LastDrain.Status: "draining", "complete", "canceled" or "failed".

    ``detailed``: built from a full node read (``GET /v1/node/:id``), so ``meta``
    and the drain deadline are known. Nomad's node list leaves them out, and
    nothing is disrupted on the strength of a list entry alone (see
    reconciler.controller: nodes are read in full before a drain or delete).
    """

    id: str
    name: str
    status: NodeStatus
    eligible: bool = True
    draining: bool = False
    drain_meta: Mapping[str, str] = field(default_factory=dict)
    drain_started_at: float | None = None
    drain_deadline_at: float | None = None
    last_drain_status: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    node_class: str = ""
    datacenter: str = ""
    node_pool: str = "default"
    cpu_mhz: int = 0
    memory_mb: int = 0
    status_updated_at: float | None = None
    create_index: int = 0
    detailed: bool = False


@dataclass(frozen=True, slots=True)
class Allocation:
    id: str
    node_id: str
    job_id: str
    job_type: str = "service"
    client_status: str = "running"
    desired_status: str = "run"
    cpu_mhz: int = 0
    memory_mb: int = 0

    @property
    def is_live(self) -> bool:
        """Still holds resources on its node (not finished, not being stopped for good)."""
        return self.client_status in ("pending", "running") and self.desired_status == "run"


@dataclass(frozen=True, slots=True)
class BlockedAsk:
    """Placements Nomad could not make: one blocked evaluation's task group.

    ``cpu_mhz``/``memory_mb`` are what one placement asked for in the dimensions
    that ran out, or, once the job is read, its task group's whole ask.
    ``class_eligibility`` (node class -> could the job run there) is the
    evaluation's; ``datacenters`` and ``node_classes`` come from the job.
    """

    eval_id: str
    job_id: str
    task_group: str
    placements: int
    cpu_mhz: int
    memory_mb: int
    node_pool: str = "default"
    class_eligibility: Mapping[str, bool] = field(default_factory=dict)
    datacenters: tuple[str, ...] = ()  # from the job; may hold globs ("*", "dc-*")
    node_classes: tuple[str, ...] = ()  # a ${node.class} constraint's values; empty: any


_URL_SCHEMES = ("file:", "http:", "https:")
RELEASE_REMOTE = "release"  # the remote a launch that names none uses


def split_image(image: str) -> tuple[str, str]:
    """(remote, alias) as the multipass CLI splits ``daily:26.10``; URLs stay whole.

    The daemon takes the remote in its own field: an image "daily:26.10" sent with no
    remote is looked up as that alias on the default remote, and not found.
    """
    if image.startswith(_URL_SCHEMES) or ":" not in image:
        return "", image
    remote, _, alias = image.partition(":")
    return remote, alias


@dataclass(frozen=True, slots=True)
class ImageCatalogue:
    """What multipassd's `find` lists: the images it launches by alias."""

    names: frozenset[str]  # as a launch names them: "24.04", "noble", "daily:26.10"

    def offers(self, image: str) -> bool:
        """Whether a launch of ``image`` passes the daemon's image check (validate_image).

        URLs are not looked up before the launch; no image is the daemon's default.
        """
        remote, alias = split_image(image)
        if not remote and (image.startswith(_URL_SCHEMES) or alias in ("", "default")):
            return True
        return (f"{remote}:{alias}" if remote else alias) in self.names


@dataclass(frozen=True, slots=True)
class HostState:
    """One Multipass host as this pass found it: its settings and what placement may use.

    ``cpus``, ``memory`` and ``disk`` are what the reconciler may place there in all:
    the daemon's figures (daemon_info), capped by the host variable, less its reserves;
    ``cpus`` already multiplied by the CPU overcommit factor. ``reachable`` false: the
    daemon could not be read this pass, so its inventory is unknown (``error`` says why);
    that is never the same as a host with no instances.
    """

    name: str
    reachable: bool = True
    error: str | None = None
    version: str = ""
    cpus: int = 0
    memory: int = 0
    disk: int = 0
    cordoned: bool = False
    evacuate: bool = False
    max_parallel_launches: int = 2


@dataclass(frozen=True, slots=True)
class Observed:
    """One consistent snapshot of both inventories, taken at ``at``."""

    instances: tuple[Instance, ...]
    nodes: tuple[Node, ...]
    allocations: tuple[Allocation, ...] = ()
    at: float = 0.0
    nomad_index: int = 0
    blocked: tuple[BlockedAsk, ...] = ()
    # What the daemon launches, when its `find` was read this pass; None: not read.
    images: ImageCatalogue | None = None
    # Images the daemon refused to launch (image -> its answer), until it offers them.
    refused_images: Mapping[str, str] = field(default_factory=dict)
    # Every host of the fleet by name, reachable or not. Empty: the world before hosts,
    # one daemon (host "default") whose capacity is not accounted.
    hosts: Mapping[str, HostState] = field(default_factory=dict)
