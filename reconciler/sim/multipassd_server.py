"""A multipassd simulator: a real grpc.aio server with TLS, on loopback.

Same package, service, method names and streaming shapes as the daemon; the
same status codes and messages for the errors the reconciler handles. Trust
works as certs.py describes: TLS requires a client certificate issued by the
simulator, and the daemon trusts it only after `authenticate`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from reconciler.multipass._pb import multipass_pb2 as pb
from reconciler.multipass._pb import multipass_pb2_grpc as pb_grpc
from reconciler.sim.certs import SimCertificates, fingerprint
from reconciler.sim.faults import FaultInjector
from reconciler.sim.multipass_state import Event, MultipassState, SimRpcError
from reconciler.units import format_size, parse_size

UNAUTHENTICATED_MESSAGE = (
    "The user is not authenticated with the Multipass service.\n\n"
    "Please authenticate before proceeding (e.g. via 'multipass authenticate'). Note that "
    "you first need an authenticated user to set and provide you with a trusted passphrase "
    "(e.g. via 'multipass set local.passphrase')."
)
NO_PASSPHRASE_MESSAGE = (
    "Passphrase is not set. Please `multipass set local.passphrase` with a trusted client."
)
WRONG_PASSPHRASE_MESSAGE = "Passphrase is not correct. Please try again."


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

    @staticmethod
    def _client_fingerprint(context: grpc.aio.ServicerContext) -> str | None:
        certs = context.auth_context().get("x509_pem_cert") or []
        return fingerprint(certs[0]) if certs else None

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
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_PASSPHRASE_MESSAGE)
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
        cpus, memory, disk = self.s.state.available()
        yield pb.DaemonInfoReply(cpus=cpus, memory=max(0, memory), available_space=max(0, disk))

    async def list(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("list", context)
        await self._first(request_iterator, context)
        items = [
            pb.ListVMInstance(
                name=i.name,
                instance_status=pb.InstanceStatus(
                    status=pb.InstanceStatus.Status.Value(i.state.value)
                ),
                ipv4=list(i.ipv4),
                current_release=i.image,
            )
            for i in sorted(self.s.state.instances.values(), key=lambda i: i.name)
        ]
        yield pb.ListReply(instance_list=pb.InstancesList(instances=items))

    async def info(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("info", context)
        request = await self._first(request_iterator, context)
        names = [p.instance_name for p in request.instance_snapshot_pairs]
        state = self.s.state
        for name in names:
            if name not in state.instances:
                await context.abort(grpc.StatusCode.NOT_FOUND, f'instance "{name}" does not exist')
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
                memory_total=format_size(i.memory),
                disk_total=format_size(i.disk),
                cpu_count=str(i.cpus),
                instance_info=pb.InstanceDetails(
                    image_release=i.image, current_release=i.image, id=i.id, ipv4=list(i.ipv4)
                ),
            )
            item.instance_info.creation_timestamp.FromNanoseconds(int(i.created_at * 1e9))
            details.append(item)
        yield pb.InfoReply(details=details)

    async def launch(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("launch", context)
        request = await self._first(request_iterator, context)
        name = request.instance_name or f"vm-{self.s.state.rng.randrange(10**6)}"
        try:
            memory = parse_size(request.mem_size or "1G")
            disk = parse_size(request.disk_space or "5G")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            self.s.state.begin_launch(name, memory, disk)
        except SimRpcError as exc:
            await self._fail(context, exc)
        try:
            for percent in ("10", "55", "100"):
                yield pb.LaunchReply(
                    launch_progress=pb.LaunchProgress(
                        type=pb.LaunchProgress.IMAGE, percent_complete=percent
                    )
                )
                await asyncio.sleep(0)
            if self.s.faults.should_fail(self.s.launch_failure):
                self.s.state.abort_launch(name)
                await context.abort(
                    grpc.StatusCode.INTERNAL, f'failed to launch "{name}": simulated failure'
                )
            yield pb.LaunchReply(create_message=f"Creating {name}")
            inst = self.s.state.create(
                name,
                request.image or "24.04",
                request.num_cores or 1,
                memory,
                disk,
                request.cloud_init_user_data,
            )
        except BaseException:
            self.s.state.abort_launch(name)
            raise
        yield pb.LaunchReply(create_message="Waiting for initialization to complete")
        # Like the daemon, answer once the VM has booted (or the request's timeout passed).
        await self.s.wait_running(inst.name)
        yield pb.LaunchReply(vm_instance_name=name)

    async def delet(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("delet", context)
        request = await self._first(request_iterator, context)
        names = [p.instance_name for p in request.instance_snapshot_pairs]
        try:
            purged = self.s.state.delete(names, request.purge)
        except SimRpcError as exc:
            await self._fail(context, exc)
        yield pb.DeleteReply(purged_instances=purged)

    async def purge(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        await self._enter("purge", context)
        await self._first(request_iterator, context)
        yield pb.PurgeReply(purged_instances=self.s.state.purge())


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
    ) -> None:
        from reconciler.sim.faults import Fault

        self.state = state
        self.certs = certs
        self.passphrase = passphrase
        self.faults = faults or FaultInjector()
        self.launch_failure = Fault()  # error_rate: launches that fail after preparing
        self.host = host
        self.port = port
        self.trusted: set[str] = set()
        self.calls: dict[str, int] = {}
        self._running: dict[str, asyncio.Event] = {}
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        credentials = grpc.ssl_server_credentials(
            [(self.certs.server_key.read_bytes(), self.certs.server_cert.read_bytes())],
            root_certificates=self.certs.ca_cert.read_bytes(),
            require_client_auth=True,
        )
        self._server = grpc.aio.server()
        pb_grpc.add_RpcServicer_to_server(_Servicer(self), self._server)
        self.port = self._server.add_secure_port(f"{self.host}:{self.port}", credentials)
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None
        for event in self._running.values():
            event.set()

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
