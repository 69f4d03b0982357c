"""The multipassd simulator's world: instances on a host with finite room, on a clock.

Pure state, no I/O. The gRPC server turns calls into these methods; the
simulation advances it with ``tick()``, which reports what happened (an
instance finished booting, one went away) so the Nomad side can follow.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field

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
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
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


class MultipassState:
    def __init__(
        self,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        boot_seconds: float = 40.0,
        capacity: HostCapacity | None = None,
        version: str = "1.15.0",
    ) -> None:
        self.clock = clock
        self.rng = rng or random.Random(0)
        self.boot_seconds = boot_seconds
        self.capacity = capacity or HostCapacity()
        self.version = version
        self.instances: dict[str, SimInstance] = {}
        self.preparing: set[str] = set()
        self._pending_events: list[Event] = []
        self._next_ip = 2

    # ------------------------------------------------------------ launch

    def begin_launch(self, name: str, memory: int, disk: int) -> None:
        """Claim a name for a launch in progress, as the daemon does before fetching the image."""
        if not _NAME.match(name):
            raise SimRpcError("INVALID_ARGUMENT", f'Invalid instance name supplied: "{name}"')
        if name in self.instances:
            raise SimRpcError("INVALID_ARGUMENT", f'instance "{name}" already exists')
        if name in self.preparing:
            raise SimRpcError("INVALID_ARGUMENT", f'instance "{name}" is being prepared')
        used_mem = sum(
            i.memory for i in self.instances.values() if i.state is not InstanceState.DELETED
        )
        used_disk = sum(i.disk for i in self.instances.values())
        if used_mem + memory > self.capacity.memory:
            raise SimRpcError(
                "FAILED_PRECONDITION",
                f'Insufficient memory to launch "{name}": {memory} bytes asked, '
                f"{self.capacity.memory - used_mem} available",
            )
        if used_disk + disk > self.capacity.disk:
            raise SimRpcError(
                "FAILED_PRECONDITION",
                f'Insufficient disk space to launch "{name}": {disk} bytes asked, '
                f"{self.capacity.disk - used_disk} available",
            )
        self.preparing.add(name)

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
        """Test hook: the VM stops (crash, host reboot)."""
        inst = self.instances[name]
        inst.state = InstanceState.STOPPED
        self._pending_events.append(Event("stopped", name, inst))

    def available(self) -> tuple[int, int, int]:
        live = [i for i in self.instances.values() if i.state is not InstanceState.DELETED]
        return (
            self.capacity.cpus,
            self.capacity.memory - sum(i.memory for i in live),
            self.capacity.disk - sum(i.disk for i in self.instances.values()),
        )

    def tick(self) -> list[Event]:
        """Advance to the clock's now; report what happened since the last tick."""
        now = self.clock.now()
        events, self._pending_events = self._pending_events, []
        for inst in self.instances.values():
            if inst.state is InstanceState.STARTING and now >= inst.ready_at:
                inst.state = InstanceState.RUNNING
                events.append(Event("running", inst.name, inst))
        return events
