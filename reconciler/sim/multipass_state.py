"""The multipassd simulator's world: instances on a host with finite room, on a clock.

Pure state, no I/O. The gRPC server turns calls into these methods; the
simulation advances it with ``tick()``, which reports what happened (an
instance finished booting, one went away) so the Nomad side can follow.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from reconciler.clock import Clock
from reconciler.model import InstanceState

GiB = 1024**3
# multipass: a hostname-like name, starting with a letter, at most 63 characters.
_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class SimRpcError(Exception):
    """A call the real daemon would refuse: gRPC status code name and message."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass
class SimInstance:
    name: str
    image: str
    cpus: int
    memory: int
    disk: int
    user_data: str
    created_at: float
    ready_at: float
    state: InstanceState = InstanceState.STARTING
    id: str = ""
    ipv4: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    kind: str  # "running" | "gone" | "stopped"
    name: str
    instance: SimInstance | None = None


@dataclass
class HostCapacity:
    cpus: int = 16
    memory: int = 64 * GiB
    disk: int = 1024 * GiB


# What the hypervisor says when a VM's memory cannot be had (the daemon passes it on).
NO_MEMORY_MESSAGE = (
    "qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory"
)
# Ubuntu 24.04's cloud image: a disk smaller than this is refused.
DEFAULT_IMAGE_SIZE = 3 * GiB + GiB // 2


class MultipassState:
    def __init__(
        self,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        boot_seconds: float = 40.0,
        prepare_seconds: float = 0.0,
        capacity: HostCapacity | None = None,
        image_size: int = DEFAULT_IMAGE_SIZE,
        version: str = "1.15.0",
    ) -> None:
        self.clock = clock
        self.rng = rng or random.Random(0)
        self.boot_seconds = boot_seconds
        # Mean time a launch spends fetching and preparing its image (the name is
        # "being prepared" meanwhile); each launch draws 0.5x..1.5x of it from the RNG.
        self.prepare_seconds = prepare_seconds
        self.capacity = capacity or HostCapacity()
        self.image_size = image_size
        self.version = version
        self.instances: dict[str, SimInstance] = {}
        self.preparing: set[str] = set()
        self._pending_events: list[Event] = []
        self._next_ip = 2

    # ------------------------------------------------------------ launch

    def begin_launch(self, name: str, memory: int = 0, disk: int = 0) -> None:
        """Claim a name for a launch in progress, as the daemon does before fetching the image.

        ``memory`` and ``disk`` are accepted for callers that pass them; the daemon checks
        neither here (see ``check_disk`` and ``fits_in_memory`` for when it does).
        """
        if not _NAME.match(name):
            raise SimRpcError("INVALID_ARGUMENT", f'Invalid instance name supplied: "{name}"')
        if name in self.instances:
            raise SimRpcError("INVALID_ARGUMENT", f'instance "{name}" already exists')
        if name in self.preparing:
            raise SimRpcError("INVALID_ARGUMENT", f'instance "{name}" is being prepared')
        self.preparing.add(name)

    def prepare_duration(self) -> float:
        """How long this launch's image preparation takes (seeded)."""
        if self.prepare_seconds <= 0:
            return 0.0
        return self.prepare_seconds * self.rng.uniform(0.5, 1.5)

    def check_disk(self, disk: int) -> None:
        """The daemon's checks once the image is known: it must fit the request and the host.

        Free room is what the host's disk has after every instance's disk (purged ones
        excepted), as if images were fully allocated. Less free room than the request,
        but more than the image, only earns a warning in the daemon's log.
        """
        if disk < self.image_size:
            raise SimRpcError(
                "FAILED_PRECONDITION",
                f"Requested disk ({disk} bytes) below minimum for this image "
                f"({self.image_size} bytes)",
            )
        free = max(0, self.capacity.disk - sum(i.disk for i in self.instances.values()))
        if free < self.image_size:
            raise SimRpcError(
                "FAILED_PRECONDITION",
                f"Available disk ({free} bytes) below minimum for this image "
                f"({self.image_size} bytes)",
            )

    def fits_in_memory(self, memory: int) -> bool:
        """Whether a VM of ``memory`` bytes can start beside the running ones.

        The daemon never checks memory: the hypervisor fails to start the VM instead.
        """
        return self.memory_in_use() + memory <= self.capacity.memory

    def memory_in_use(self) -> int:
        # A stopped VM holds no memory.
        live = (InstanceState.STARTING, InstanceState.RUNNING)
        return sum(i.memory for i in self.instances.values() if i.state in live)

    def abort_launch(self, name: str) -> None:
        self.preparing.discard(name)

    def create(
        self, name: str, image: str, cpus: int, memory: int, disk: int, user_data: str
    ) -> SimInstance:
        """The launch's VM exists and is booting."""
        self.preparing.discard(name)
        now = self.clock.now()
        ip = f"10.73.0.{self._next_ip}"
        self._next_ip += 1
        inst = SimInstance(
            name=name,
            image=image,
            cpus=cpus,
            memory=memory,
            disk=disk,
            user_data=user_data,
            created_at=now,
            ready_at=now + self.boot_seconds,
            id=f"{self.rng.getrandbits(128):032x}",
            ipv4=(ip,),
        )
        self.instances[name] = inst
        return inst

    # ------------------------------------------------------------ other calls

    def delete(self, names: list[str], purge: bool) -> list[str]:
        """Delete (and purge) named instances; all must exist, as the daemon checks first."""
        for name in names:
            if name not in self.instances:
                raise SimRpcError("NOT_FOUND", f'instance "{name}" does not exist')
        purged = []
        for name in names:
            if purge:
                del self.instances[name]
                purged.append(name)
            else:
                self.instances[name].state = InstanceState.DELETED
            self._pending_events.append(Event("gone", name))
        return purged

    def purge(self) -> list[str]:
        gone = [n for n, i in self.instances.items() if i.state is InstanceState.DELETED]
        for name in gone:
            del self.instances[name]
        return gone

    def stop(self, name: str) -> None:
        """The VM stops: a crash, a host reboot, or a start the hypervisor could not make."""
        inst = self.instances[name]
        inst.state = InstanceState.STOPPED
        self._pending_events.append(Event("stopped", name, inst))

    def host_totals(self) -> tuple[int, int, int]:
        """CPUs, memory and disk of the host, as the daemon's daemon_info reports them.

        Totals, not what is left: multipassd reports the host's RAM and the size of
        its storage volume; free room is the caller's computation.
        """
        return self.capacity.cpus, self.capacity.memory, self.capacity.disk

    def tick(self) -> list[Event]:
        """Advance to the clock's now; report what happened since the last tick."""
        now = self.clock.now()
        events, self._pending_events = self._pending_events, []
        for inst in self.instances.values():
            if inst.state is InstanceState.STARTING and now >= inst.ready_at:
                inst.state = InstanceState.RUNNING
                events.append(Event("running", inst.name, inst))
        return events
