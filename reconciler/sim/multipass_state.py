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
from reconciler.sim.multipass_images import (
    Catalogue,
    SimImage,
    image_not_found_message,
    is_url,
)
from reconciler.units import parse_multipassd_size

GiB = 1024**3
MiB = 1024**2
# multipass: a hostname-like name, starting with a letter, at most 63 characters.
_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# include/multipass/constants.h
MIN_MEMORY = 512 * MiB
MIN_DISK = GiB
DEFAULT_MEMORY = "1G"
DEFAULT_DISK = 5 * GiB
# The status of any launch whose options the daemon refuses (daemon.cpp: create_vm); which
# option it was travels only in the binary LaunchError details.
INVALID_ARGUMENTS_MESSAGE = "Invalid arguments supplied"
# An image given by URL: fetched, never looked up (its size is known only once downloaded).
_URL_IMAGE = SimImage("", "", "", "", ())


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
    release: str = ""  # the image's release title: `info`'s image_release
    # Bytes its disk file takes on the host (a sparse image grows as the guest writes).
    disk_used: int = 0
    # The guest finished booting (the daemon may not know: see MultipassState.tick).
    guest_up: bool = False


@dataclass(frozen=True)
class LaunchArgs:
    """A launch request as the daemon's first checks leave it."""

    image: SimImage
    memory: int
    disk: int | None  # None: not given, the image decides


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


class MultipassState:
    def __init__(
        self,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        boot_seconds: float = 40.0,
        prepare_seconds: float = 0.0,
        capacity: HostCapacity | None = None,
        catalogue: Catalogue | None = None,
        version: str = "1.15.0",
    ) -> None:
        self.clock = clock
        self.rng = rng or random.Random(0)
        self.boot_seconds = boot_seconds
        # Mean time a launch spends fetching and preparing its image (the name is
        # "being prepared" meanwhile); each launch draws 0.5x..1.5x of it from the RNG.
        self.prepare_seconds = prepare_seconds
        self.capacity = capacity or HostCapacity()
        self.catalogue = catalogue or Catalogue()
        # Bytes of the host's disk taken by other things than instances (the image cache,
        # the OS, the user's files): what `use_disk` grows.
        self.disk_used_elsewhere = 0
        self.version = version
        self.instances: dict[str, SimInstance] = {}
        self.preparing: set[str] = set()
        self._pending_events: list[Event] = []
        self._next_ip = 2

    # ------------------------------------------------------------ launch

    def check_launch(
        self, name: str, image: str, remote: str, mem_size: str, disk_space: str
    ) -> LaunchArgs:
        """The daemon's checks before it claims a name, in its order (daemon.cpp: create_vm).

        First the image (``validate_image``: an alias no remote has is FAILED_PRECONDITION,
        before anything is created), then the options (sizes in the daemon's own grammar
        and above its minimums, a valid hostname): any bad one is INVALID_ARGUMENT
        "Invalid arguments supplied".
        """
        if remote and not image:
            raise SimRpcError(
                "FAILED_PRECONDITION", "Must specify an image when specifying a remote"
            )
        resolved = _URL_IMAGE if is_url(image) else self.catalogue.resolve(image, remote)
        if resolved is None:
            raise SimRpcError("FAILED_PRECONDITION", image_not_found_message(image, remote))
        memory = _size_at_least(mem_size or DEFAULT_MEMORY, MIN_MEMORY)
        disk = _size_at_least(disk_space, MIN_DISK) if disk_space else None
        if memory is None or (disk_space and disk is None) or (name and not _NAME.match(name)):
            raise SimRpcError("INVALID_ARGUMENT", INVALID_ARGUMENTS_MESSAGE)
        return LaunchArgs(resolved, memory, disk)

    def begin_launch(self, name: str) -> None:
        """Claim a name for a launch in progress, as the daemon does before fetching the image."""
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

    def final_disk(self, image: SimImage, requested: int | None) -> int:
        """The disk the instance gets, or the daemon's refusal (compute_final_image_size).

        Not given: the default 5G, or the image's minimum if larger. Given below the
        image's minimum: refused. Then the host's volume must have the image's minimum
        free; less free room than the disk asked for only earns a warning in the
        daemon's log, since disk images are sparse and grow as the guest writes.
        """
        if requested is None:
            disk = max(DEFAULT_DISK, image.min_disk)
        elif requested < image.min_disk:
            raise SimRpcError(
                "FAILED_PRECONDITION",
                f"Requested disk ({requested} bytes) below minimum for this image "
                f"({image.min_disk} bytes)",
            )
        else:
            disk = requested
        free = self.disk_free()
        if free < image.min_disk:
            raise SimRpcError(
                "FAILED_PRECONDITION",
                f"Available disk ({free} bytes) below minimum for this image "
                f"({image.min_disk} bytes)",
            )
        return disk

    def disk_free(self) -> int:
        """What the host's volume has left: its size less what is actually written on it."""
        used = self.disk_used_elsewhere + sum(i.disk_used for i in self.instances.values())
        return max(0, self.capacity.disk - used)

    def use_disk(self, name: str, written: int) -> None:
        """The guest writes ``written`` more bytes: its disk file grows, up to its size."""
        inst = self.instances[name]
        inst.disk_used = min(inst.disk, inst.disk_used + written)

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
        self, name: str, image: SimImage | str, cpus: int, memory: int, disk: int, user_data: str
    ) -> SimInstance:
        """The launch's VM exists and is booting. ``image``: resolved, or an alias to resolve."""
        if isinstance(image, str):
            found = self.catalogue.resolve(image, "")
            if found is None:
                raise ValueError(f"no image {image!r} in the simulated catalogue")
            image = found
        self.preparing.discard(name)
        now = self.clock.now()
        ip = f"10.73.0.{self._next_ip}"
        self._next_ip += 1
        inst = SimInstance(
            name=name,
            image=image.aliases[0] if image.aliases else "",
            release=image.release,
            disk_used=min(disk, image.footprint),
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
            if inst.guest_up or now < inst.ready_at:
                continue
            if inst.state not in (InstanceState.STARTING, InstanceState.UNKNOWN):
                continue
            inst.guest_up = True
            # A launch that timed out left the daemon's state UNKNOWN; the daemon does not
            # look again by itself, but the guest boots and its cloud-init runs all the same.
            if inst.state is InstanceState.STARTING:
                inst.state = InstanceState.RUNNING
            events.append(Event("running", inst.name, inst))
        return events

    def time_out(self, name: str) -> None:
        """The launch gave up waiting for SSH: the daemon marks the instance UNKNOWN
        (``BaseVirtualMachine::timeout_ssh``) and keeps it."""
        inst = self.instances.get(name)
        if inst is not None and inst.state is InstanceState.STARTING:
            inst.state = InstanceState.UNKNOWN


def _size_at_least(text: str, minimum: int) -> int | None:
    """``text`` in bytes if the daemon parses it and it is at least ``minimum``; else None."""
    try:
        size = parse_multipassd_size(text)
    except ValueError:
        return None
    return size if size >= minimum else None
