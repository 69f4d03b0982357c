"""A multipassd simulator: a real grpc.aio server with TLS, on loopback.

Same package, service, method names and streaming shapes as the daemon; the
same status codes and messages for the errors the reconciler handles. Trust
works as the daemon's: TLS (tls_front.py) accepts any client certificate, and
the daemon trusts one only after `authenticate` with the passphrase.

An instance's creation_timestamp goes out through the server's ``wire_time``
(the world's time by default; the wall-clock moment under ``reconciler sim
--speed``, see ``Simulation``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from reconciler.clock import TimeMap, same_time
from reconciler.model import InstanceState
from reconciler.multipass._pb import multipass_pb2 as pb
from reconciler.multipass._pb import multipass_pb2_grpc as pb_grpc
from reconciler.sim.certs import SimCertificates
from reconciler.sim.faults import FaultInjector
from reconciler.sim.multipass_state import (
    NO_MEMORY_MESSAGE,
    Event,
    LaunchArgs,
    MultipassState,
    SimRpcError,
)
from reconciler.sim.tls_front import TlsFront

log = logging.getLogger(__name__)

UNAUTHENTICATED_MESSAGE = (
    "The user is not authenticated with the Multipass service.\n\n"
    "Please authenticate before proceeding (e.g. via 'multipass authenticate'). Note that "
    "you first need an authenticated user to set and provide you with a trusted passphrase "
    "(e.g. via 'multipass set local.passphrase')."
)
# Current daemons refuse `authenticate` without a passphrase with this (shortened here);
# daemons before it said NO_PASSPHRASE_MESSAGE_OLD. Both are FAILED_PRECONDITION.
NO_PASSPHRASE_MESSAGE = (
    "Incorrect passphrase. No passphrase is set.\n\n"
    "An authenticated user must first set one with 'multipass set local.passphrase'."
)
NO_PASSPHRASE_MESSAGE_OLD = (
    "Passphrase is not set. Please `multipass set local.passphrase` with a trusted client."
)
WRONG_PASSPHRASE_MESSAGE = "Passphrase is not correct. Please try again."
# What the daemon waits for a launched VM to boot when the request gives no timeout.
DEFAULT_LAUNCH_TIMEOUT = 300.0
# How the daemon prefixes the errors it collected (daemon.cpp: grpc_status_for).
ERRORS_PREFIX = "The following errors occurred:"
DEFAULT_ZONE = "zone1"  # the first of the daemon's availability zones


class _Servicer(pb_grpc.RpcServicer):  # type: ignore[misc]
    def __init__(self, server: MultipassdSimServer) -> None:
        self.s = server

    # ------------------------------------------------------------ helpers

    async def _enter(
        self, rpc: str, context: grpc.aio.ServicerContext, *, auth: bool = True
    ) -> None:
        self.s.calls[rpc] = self.s.calls.get(rpc, 0) + 1
        fault = self.s.faults.lookup(rpc)
        if fault is not None:
            if fault.hang:
                await asyncio.Event().wait()  # until the client's deadline cancels us
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if self.s.faults.should_fail(fault):
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"simulated fault on {rpc}")
        if auth and self._client_fingerprint(context) not in self.s.trusted:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)

    def _client_fingerprint(self, context: grpc.aio.ServicerContext) -> str | None:
        """The client certificate this call's connection came with (see tls_front.py)."""
        front = self.s.front
        return front.identity_of(context.peer()) if front is not None else None

    @staticmethod
    async def _first(
        request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> Any:
        async for request in request_iterator:
            return request
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request sent")

    @staticmethod
    async def _fail(context: grpc.aio.ServicerContext, exc: SimRpcError) -> None:
        await context.abort(getattr(grpc.StatusCode, exc.code), exc.message)

    # ------------------------------------------------------------ RPCs

    async def authenticate(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("authenticate", context, auth=False)
        request = await self._first(request_iterator, context)
        if not self.s.passphrase:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, self.s.no_passphrase_message)
        if request.passphrase != self.s.passphrase:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, WRONG_PASSPHRASE_MESSAGE)
        fp = self._client_fingerprint(context)
        if fp:
            self.s.trusted.add(fp)
        yield pb.AuthenticateReply()

    async def version(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("version", context)
        await self._first(request_iterator, context)
        yield pb.VersionReply(version=self.s.state.version)

    async def daemon_info(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("daemon_info", context)
        await self._first(request_iterator, context)
        # Host totals, as the daemon reports them (despite the field's name).
        cpus, memory, disk = self.s.state.host_totals()
        yield pb.DaemonInfoReply(cpus=cpus, memory=memory, available_space=disk)

    async def find(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        """What the daemon can launch. With no search string, every supported image of
        every remote, each once, with the remote it is on (daemon.cpp: find)."""
        await self._enter("find", context)
        request = await self._first(request_iterator, context)
        catalogue = self.s.state.catalogue.images
        if request.remote_name:
            chosen = [i for i in catalogue if i.remote == request.remote_name]
            if not chosen:
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f'Remote "{request.remote_name}" is unknown or unreachable.',
                )
        else:
            chosen = list(catalogue)
        if request.search_string:
            chosen = [i for i in chosen if request.search_string in i.aliases]
        yield pb.FindReply(
            images_info=[
                pb.FindReply.ImageInfo(
                    os=i.os,
                    release=i.release,
                    version=i.version,
                    aliases=list(i.aliases),
                    codename=i.codename,
                    remote_name=i.remote,
                )
                for i in chosen
            ]
        )

    async def list(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("list", context)
        request = await self._first(request_iterator, context)
        items = []
        for i in sorted(self.s.state.instances.values(), key=lambda i: i.name):
            item = pb.ListVMInstance(
                name=i.name,
                instance_status=pb.InstanceStatus(
                    status=pb.InstanceStatus.Status.Value(i.state.value)
                ),
                current_release=i.release,
            )
            # Addresses only when asked, and only of running instances (daemon.cpp: list).
            if request.request_ipv4 and i.state is InstanceState.RUNNING:
                item.ipv4.extend(i.ipv4)
            items.append(item)
        yield pb.ListReply(instance_list=pb.InstancesList(instances=items))

    async def info(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("info", context)
        request = await self._first(request_iterator, context)
        names = [p.instance_name for p in request.instance_snapshot_pairs]
        state = self.s.state
        missing = [n for n in names if n not in state.instances]
        if missing:
            # As every call that selects instances by name: all missing names, wrapped
            # (daemon.cpp: grpc_status_for_selection); no reply precedes it.
            await self._fail(context, _selection_errors("NOT_FOUND", missing, "does not exist"))
        chosen = (
            [state.instances[n] for n in names]
            if names
            else sorted(state.instances.values(), key=lambda i: i.name)
        )
        details = []
        for i in chosen:
            item = pb.DetailedInfoItem(
                name=i.name,
                instance_status=pb.InstanceStatus(
                    status=pb.InstanceStatus.Status.Value(i.state.value)
                ),
                instance_info=pb.InstanceDetails(image_release=i.release, id=i.id),
            )
            created = self.s.wire_time(i.created_at)
            item.instance_info.creation_timestamp.FromNanoseconds(int(created * 1e9))
            # What the daemon reads from inside the guest: only when asked, and only of a
            # running instance (daemon.cpp: populate_instance_info).
            if not request.no_runtime_information and i.state is InstanceState.RUNNING:
                item.memory_total = str(i.memory)
                item.disk_total = str(i.disk)
                item.cpu_count = str(i.cpus)
                item.instance_info.current_release = i.release
                item.instance_info.disk_usage = str(i.disk_used)
                item.instance_info.ipv4.extend(i.ipv4)
            details.append(item)
        yield pb.InfoReply(details=details)

    async def launch(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("launch", context)
        request = await self._first(request_iterator, context)
        state = self.s.state
        try:
            args = state.check_launch(
                request.instance_name,
                request.image,
                request.remote_name,
                request.mem_size,
                request.disk_space,
            )
            name = request.instance_name or f"vm-{state.rng.randrange(10**6)}"
            state.begin_launch(name)
        except SimRpcError as exc:
            await self._fail(context, exc)
        # The launch runs in a task of the daemon's own: a client that cancels its
        # stream stops hearing about it, but the daemon still prepares and starts the VM.
        replies: asyncio.Queue[Any] = asyncio.Queue()
        self.s.start_launch(_Launch(self.s, name, request, args, replies.put_nowait))
        while True:
            reply = await replies.get()
            if reply is None:
                return
            if isinstance(reply, SimRpcError):
                await self._fail(context, reply)
            yield reply

    async def delet(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("delet", context)
        request = await self._first(request_iterator, context)
        names = [p.instance_name for p in request.instance_snapshot_pairs]
        missing = [n for n in names if n not in self.s.state.instances]
        if missing:
            yield pb.DeleteReply()  # the daemon writes its (empty) reply, then the status
            await self._fail(context, _selection_errors("NOT_FOUND", missing, "does not exist"))
        purged = self.s.state.delete(names, request.purge)
        yield pb.DeleteReply(purged_instances=purged)

    async def purge(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("purge", context)
        await self._first(request_iterator, context)
        yield pb.PurgeReply(purged_instances=self.s.state.purge())


def _selection_errors(code: str, names: list[str], what: str) -> SimRpcError:
    """The daemon's status for names it could not select: one line each, wrapped."""
    lines = "\n".join(f'instance "{n}" {what}' for n in names)
    return SimRpcError(code, f"{ERRORS_PREFIX}\n{lines}")


class _Launch:
    """One launch, from a claimed name to a booted VM (or the error the daemon answers).

    Replies go to ``send``; the last is None (success) or a SimRpcError (the call's
    status). Their order is the daemon's (daemon.cpp: create_vm and
    async_wait_for_ssh_and_start_mounts_for): "Creating", the image's download progress,
    "Preparing image", "Configuring", "Starting"; "Waiting for initialization to
    complete" only once the VM answers SSH; the instance's name last, whatever the outcome.
    """

    def __init__(
        self,
        server: MultipassdSimServer,
        name: str,
        request: Any,
        args: LaunchArgs,
        send: Callable[[Any], None],
    ) -> None:
        self.s = server
        self.name = name
        self.request = request
        self.args = args
        self.send = send

    async def run(self) -> None:
        state, name = self.s.state, self.name
        try:
            disk = await self._prepare()
        except SimRpcError as exc:
            # As the daemon: a failure while preparing releases the name, leaves no VM.
            state.abort_launch(name)
            self.send(exc)
            return
        except BaseException:
            state.abort_launch(name)
            raise
        request = self.request
        fits = state.fits_in_memory(self.args.memory)  # beside the VMs already there
        state.create(
            name,
            self.args.image,
            request.num_cores or 1,
            self.args.memory,
            disk,
            request.cloud_init_user_data,
        )
        self.send(pb.LaunchReply(create_message=f"Starting {name}"))
        if not fits:
            # The daemon does not check memory; the hypervisor cannot start the VM, and
            # the instance stays behind, stopped.
            state.stop(name)
            self.send(_start_errors(f"Instance shutdown during start: {NO_MEMORY_MESSAGE}"))
            return
        self.send(await self._wait_booted())

    async def _prepare(self) -> int:
        """Image fetch and preparation: the name is "being prepared" throughout.

        Returns the disk the instance gets (the daemon's checks of it come once the
        image, and so its minimum size, is known).
        """
        name, state = self.name, self.s.state
        self.send(pb.LaunchReply(create_message=f"Creating {name} in {DEFAULT_ZONE}"))
        for percent in ("10", "55", "100"):
            self.send(
                pb.LaunchReply(
                    launch_progress=pb.LaunchProgress(
                        type=pb.LaunchProgress.IMAGE, percent_complete=percent
                    )
                )
            )
        self.send(pb.LaunchReply(create_message=f"Preparing image for {name}"))
        await state.clock.sleep(state.prepare_duration())
        disk = state.final_disk(self.args.image, self.args.disk)
        self.send(pb.LaunchReply(create_message=f"Configuring {name}"))
        if self.s.faults.should_fail(self.s.launch_failure):
            raise SimRpcError(
                "FAILED_PRECONDITION", f'failed to prepare "{name}": simulated failure'
            )
        return disk

    async def _wait_booted(self) -> Any:
        """The last reply: the daemon's error if the VM did not boot in time, else None.

        The daemon waits up to the request's timeout (5 minutes when 0) for SSH; past it,
        the instance is left UNKNOWN with "<name>: timed out waiting for response"
        (``BaseVirtualMachine::timeout_ssh``). Once SSH answers it says "Waiting for
        initialization to complete" and waits for cloud-init (done at boot here).
        """
        timeout = self.request.timeout if self.request.timeout > 0 else DEFAULT_LAUNCH_TIMEOUT
        booted = asyncio.ensure_future(self.s.wait_running(self.name))
        timer = asyncio.ensure_future(self.s.state.clock.sleep(timeout))
        try:
            await asyncio.wait((booted, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            booted.cancel()
            timer.cancel()
        inst = self.s.state.instances.get(self.name)
        error: SimRpcError | None = None
        if inst is not None and inst.state is InstanceState.RUNNING:
            self.send(pb.LaunchReply(reply_message="Waiting for initialization to complete"))
        elif inst is not None and inst.state is InstanceState.STARTING:
            self.s.state.time_out(self.name)
            error = _start_errors(f"{self.name}: timed out waiting for response")
        else:
            error = _start_errors("Instance shutdown during start")
        # The daemon names the instance whatever came of the wait, then sends the status.
        self.send(pb.LaunchReply(vm_instance_name=self.name))
        return error


def _start_errors(error: str) -> SimRpcError:
    """How the daemon answers errors met while starting: INVALID_ARGUMENT, prefixed."""
    return SimRpcError("INVALID_ARGUMENT", f"{ERRORS_PREFIX}\n{error}")


class MultipassdSimServer:
    def __init__(
        self,
        state: MultipassState,
        certs: SimCertificates,
        *,
        passphrase: str | None = "simulator-passphrase",
        faults: FaultInjector | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        wire_time: TimeMap = same_time,
    ) -> None:
        """``wire_time``: the state's times as the wire shows them (see the module doc)."""
        from reconciler.sim.faults import Fault

        self.state = state
        self.wire_time = wire_time
        self.certs = certs
        self.passphrase = passphrase
        self.faults = faults or FaultInjector()
        self.launch_failure = Fault()  # error_rate: launches that fail after preparing
        self.no_passphrase_message = NO_PASSPHRASE_MESSAGE
        self.host = host
        self.port = port
        self.trusted: set[str] = set()
        self.calls: dict[str, int] = {}
        self._running: dict[str, asyncio.Event] = {}
        self._launches: set[asyncio.Task[None]] = set()
        self._server: grpc.aio.Server | None = None
        self._backend_port = 0
        self.front: TlsFront | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        # gRPC in plaintext on loopback, behind a TLS front that trusts as the daemon does.
        self._server = grpc.aio.server()
        pb_grpc.add_RpcServicer_to_server(_Servicer(self), self._server)
        self._backend_port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        await self._start_front()

    async def _start_front(self) -> None:
        self.front = TlsFront(
            self.certs.server_cert.read_bytes(),
            self.certs.server_key.read_bytes(),
            self._backend_port,
            self.host,
            self.port,
        )
        await self.front.start()
        self.port = self.front.port

    @property
    def answering(self) -> bool:
        return self.front is not None

    async def go_down(self) -> None:
        """The daemon's process stops, the VMs it started do not.

        Its port refuses connections (a client sees UNAVAILABLE), open connections are
        cut, and the launches in flight end with them: a name being prepared is free
        again, a VM created already stays and boots. ``go_up`` listens again on the same
        port, with the same instances and the same trusted clients (the daemon keeps
        both on disk).
        """
        if self.front is not None:
            await self.front.stop()
            self.front = None
        launches = list(self._launches)
        for task in launches:
            task.cancel()
        await asyncio.gather(*launches, return_exceptions=True)

    async def go_up(self) -> None:
        if self.front is None and self._server is not None:
            await self._start_front()

    async def stop(self) -> None:
        if self.front is not None:
            await self.front.stop()
            self.front = None
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None
        for task in list(self._launches):
            task.cancel()
        for event in self._running.values():
            event.set()

    def start_launch(self, launch: _Launch) -> None:
        """Run a launch on the daemon's side, independent of the call that asked for it."""

        async def run() -> None:
            try:
                await launch.run()
            except asyncio.CancelledError:
                launch.send(SimRpcError("UNAVAILABLE", "multipassd is shutting down"))
                raise
            except Exception as exc:  # a simulator bug: fail the call, loudly
                log.exception("simulated launch of %s crashed", launch.name)
                launch.send(SimRpcError("INTERNAL", f"simulator error: {exc!r}"))
            launch.send(None)  # ignored when an error was sent already

        task = asyncio.get_running_loop().create_task(run())
        self._launches.add(task)
        task.add_done_callback(self._launches.discard)

    async def wait_running(self, name: str) -> None:
        inst = self.state.instances.get(name)
        if inst is None or inst.state.value != "STARTING":
            return
        event = self._running.setdefault(name, asyncio.Event())
        await event.wait()

    def tick(self) -> list[Event]:
        """Advance the daemon's world; wake launches whose VM finished booting or went away."""
        events = self.state.tick()
        for e in events:
            waiter = self._running.pop(e.name, None)
            if waiter is not None:
                waiter.set()
        return events
