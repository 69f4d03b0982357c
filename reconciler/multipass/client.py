"""An asyncio client for multipassd's gRPC API (grpc.aio, mutual TLS).

Almost every daemon method is a bidirectional stream: write one request, read
replies until the stream ends; the final status carries the error. Each call
here does exactly that, under a deadline, and maps the status to a typed error.

Reads are retried on temporary errors. A launch is never blindly retried:
``launch(..., exist_ok=True)`` turns "already exists" for that name into
success, which is what makes retrying it (and relaunching after a crash) safe.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from reconciler.errors import TemporaryError
from reconciler.model import (
    RELEASE_REMOTE,
    ImageCatalogue,
    Instance,
    InstanceState,
    split_image,
)
from reconciler.multipass import errors
from reconciler.multipass._pb import multipass_pb2 as pb
from reconciler.multipass._pb import multipass_pb2_grpc as pb_grpc
from reconciler.multipass.settings import MultipassSettings, default_address

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """The host as multipassd reports it: totals, not what its instances leave free."""

    cpus: int
    memory: int  # bytes of RAM in the host
    available_space: int  # bytes of the daemon's storage volume, its total size


@dataclass(frozen=True, slots=True)
class LaunchResult:
    name: str
    created: bool  # False when exist_ok turned "already exists" into success
    messages: tuple[str, ...] = ()


# How the daemon wraps the errors it collected while selecting or starting instances
# (daemon.cpp: grpc_status_for): this line, then one error per line. It comes with
# NOT_FOUND for names it does not have (info, delet), INVALID_ARGUMENT for start errors
# (a launch's timeout among them), and may wrap any message the reconciler matches.
ERRORS_PREFIX = "The following errors occurred:"


def unwrap(message: str) -> list[str]:
    """The daemon's error lines, without the wrapping when there is one."""
    if message.startswith(ERRORS_PREFIX):
        return [line for line in message[len(ERRORS_PREFIX) :].splitlines() if line.strip()]
    return [message]


def _quoted_names(message: str) -> tuple[str, ...]:
    """The quoted instance name of each of the daemon's error lines."""
    names = []
    for line in unwrap(message):
        start = line.find('"')
        end = line.find('"', start + 1)
        if 0 <= start < end:
            names.append(line[start + 1 : end])
    return tuple(names)


def _quoted_name(message: str) -> str:
    names = _quoted_names(message)
    return names[0] if names else ""


def map_rpc_error(exc: grpc.aio.AioRpcError, what: str) -> errors.MultipassError:
    """Translate a gRPC status into the typed error it means.

    ``what`` is the RPC's name; some codes mean one thing for one RPC only. Messages
    are matched wrapped ("The following errors occurred: ...") or not.
    """
    code = exc.code()
    message = exc.details() or ""
    text = f"{what}: {message}"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return errors.NotAuthenticated(text)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        if "Passphrase is not correct" in message:
            return errors.WrongPassphrase(text)
        if "already exists" in message:
            return errors.AlreadyExists(_quoted_name(message), text)
        if "is being prepared" in message:
            return errors.BeingPrepared(_quoted_name(message), text)
        return errors.InvalidRequest(text)
    if code == grpc.StatusCode.NOT_FOUND:
        names = _quoted_names(message)
        return errors.DoesNotExist(names[0] if names else "", text, names)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        # authenticate's only FAILED_PRECONDITION is "no passphrase set", worded
        # differently across daemon versions: the code is what to trust.
        if what == "authenticate":
            return errors.PassphraseNotSet(text)
        return errors.InvalidRequest(text)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.DeadlineExceeded(f"{what}: no answer from multipassd before the deadline")
    if code == grpc.StatusCode.UNAVAILABLE:
        lowered = message.lower()
        if "ssl" in lowered or "handshake" in lowered or "certificate" in lowered:
            return errors.TlsVerificationFailed(
                f"{what}: TLS with multipassd failed ({message}); is MULTIPASS_SERVER_CERT the "
                "daemon's current certificate?"
            )
        return errors.MultipassUnavailable(text)
    return errors.MultipassError(f"{what}: {code.name}: {message}")


# A launch's error lines that mean the VM was created but did not come up in time
# (base_virtual_machine.cpp: timeout_ssh, wait_for_cloud_init).
_TIMED_OUT = ("timed out waiting for response", "timed out waiting for initialization")
_IMAGE_NOT_FOUND = "Unable to find an image matching"


def _reason(details: str) -> str:
    """gRPC's "failed to connect to all addresses; last error: UNKNOWN: ipv4:...: Connection
    refused" says the cause last: keep that part."""
    return details.rsplit(": ", 1)[-1] if "last error:" in details else details


# How the daemon prefixes the errors it met starting instances (a timeout among them).
_START_ERRORS = "The following errors occurred"


def map_launch_error(exc: grpc.aio.AioRpcError, name: str, image: str) -> errors.MultipassError:
    """A launch's status: as map_rpc_error, with the daemon's launch failures typed.

    FAILED_PRECONDITION is every failure before the VM exists: an image the daemon
    does not know (refused before the name is claimed), and anything after the name
    was claimed (image fetch, disk room, VM creation), which the daemon undid. Errors
    met while starting come wrapped, as INVALID_ARGUMENT; the instance stays. ABORTED
    is a start the daemon gave up and undid.
    """
    code = exc.code()
    message = exc.details() or ""
    text = f"launch {name}: {message}"
    lines = unwrap(message)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        if any(line.startswith(_IMAGE_NOT_FOUND) for line in lines):
            return errors.ImageNotFound(name, image, text)
        if any(line.startswith("Available disk (") for line in lines):
            return errors.InsufficientCapacity(name, text, instance_kept=False)
        return errors.LaunchFailed(name, text, instance_kept=False)
    if code == grpc.StatusCode.ABORTED:
        return errors.LaunchFailed(name, text, instance_kept=False)
    if code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith(ERRORS_PREFIX):
        if "already exists" in message:  # a daemon that wraps it: still that name's refusal
            return map_rpc_error(exc, "launch")
        if any(marker in line for line in lines for marker in _TIMED_OUT):
            return errors.LaunchTimedOut(name, text)
        return errors.LaunchFailed(name, text, instance_kept=True)
    return map_rpc_error(exc, "launch")


def fetch_server_certificate(address: str, client_cert: bytes, client_key: bytes) -> bytes:
    """Trust on first use: the PEM certificate the daemon presents, unverified."""
    import os
    import tempfile

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # The daemon may ask for a client certificate at the handshake.
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        with open(cert_file, "wb") as f:
            f.write(client_cert)
        with open(key_file, "wb") as f:
            f.write(client_key)
        ctx.load_cert_chain(cert_file, key_file)
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(address.removeprefix("unix:").removeprefix("//"))
    else:
        host, _, port = address.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
    try:
        with ctx.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise errors.MultipassUnavailable(f"cannot reach multipassd at {address}: {exc}") from None
    if der is None:
        raise errors.TlsVerificationFailed(f"multipassd at {address} presented no certificate")
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def _certificate_name(pem: bytes) -> str | None:
    cert = x509.load_pem_x509_certificate(pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
        if names:
            return names[0]
    except x509.ExtensionNotFound:
        pass
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else None


class MultipassClient:
    def __init__(
        self,
        settings: MultipassSettings,
        *,
        call_timeout: float = 30.0,
        attempts: int = 4,
        backoff_max: float = 5.0,
    ) -> None:
        self.settings = settings
        self.call_timeout = call_timeout
        self.attempts = attempts
        self.backoff_max = backoff_max
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.RpcStub | None = None
        # Images the daemon refused to launch (image -> its answer): see Observer.
        self.refused_images: dict[str, str] = {}
        # Called after every RPC with (method, seconds, error or None): metrics.
        self.on_call: Callable[[str, float, str | None], None] | None = None

    async def __aenter__(self) -> MultipassClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        s = self.settings
        pin = s.server_cert
        name = s.tls_server_name
        if pin is None:
            log.warning(
                "INSECURE: multipassd's certificate is not verified (MULTIPASS_SKIP_VERIFY); "
                "trusting whatever %s presents. Pin MULTIPASS_SERVER_CERT instead.",
                s.address,
            )
            pin = await asyncio.to_thread(
                fetch_server_certificate, s.address, s.client_cert, s.client_key
            )
            name = _certificate_name(pin) or name
        credentials = grpc.ssl_channel_credentials(
            root_certificates=pin, private_key=s.client_key, certificate_chain=s.client_cert
        )
        options = [("grpc.ssl_target_name_override", name), ("grpc.default_authority", name)]
        self._channel = grpc.aio.secure_channel(s.address, credentials, options=options)
        self._stub = pb_grpc.RpcStub(self._channel)
        if s.passphrase:
            # Makes the daemon trust this certificate; harmless when it already does.
            await self.authenticate(s.passphrase)

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; ``grace``: calls in flight get this long to finish first."""
        if self._channel is not None:
            await self._channel.close(grace)
            self._channel = None

    @property
    def stub(self) -> pb_grpc.RpcStub:
        if self._stub is None:
            raise RuntimeError("MultipassClient used outside `async with`")
        return self._stub

    # ------------------------------------------------------------ plumbing

    async def _stream(
        self,
        method: str,
        request: Any,
        timeout: float | None = None,
        mapper: Callable[[grpc.aio.AioRpcError], errors.MultipassError] | None = None,
    ) -> AsyncIterator[Any]:
        """Write one request, yield every reply; map the final status (``mapper`` or generic)."""
        call = getattr(self.stub, method)(timeout=timeout or self.call_timeout)
        started = time.monotonic()
        error: str | None = None
        try:
            await call.write(request)
            await call.done_writing()
            async for reply in call:
                yield reply
        except grpc.aio.AioRpcError as exc:
            mapped = mapper(exc) if mapper is not None else map_rpc_error(exc, method)
            error = type(mapped).__name__
            if type(mapped) is errors.MultipassUnavailable:
                # As plainly as an unreachable Nomad: where, and what the OS said.
                where = self.settings.address
                if where == default_address():  # not chosen by the user: say so
                    where += (
                        " (the default; set MULTIPASS_SERVER_ADDRESS, --multipass-address "
                        "or the multipass_address item of the reconciler's variable)"
                    )
                mapped = errors.MultipassUnavailable(
                    f"{method}: cannot reach multipassd at {where}: {_reason(exc.details() or '')}"
                )
            raise mapped from None
        except GeneratorExit:
            raise  # the caller stopped reading early: not an error of the call
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            call.cancel()
            if self.on_call is not None:
                self.on_call(method, time.monotonic() - started, error)

    async def _collect(self, method: str, request: Any, timeout: float | None = None) -> list[Any]:
        return [r async for r in self._stream(method, request, timeout)]

    async def _read(self, fn: Callable[[], Any]) -> Any:
        """Retry a read on temporary errors, with jittered exponential backoff."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TemporaryError),
            wait=wait_random_exponential(multiplier=0.2, max=self.backoff_max),
            stop=stop_after_attempt(self.attempts),
            reraise=True,
        ):
            with attempt:
                return await fn()
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ calls

    async def authenticate(self, passphrase: str) -> None:
        await self._collect("authenticate", pb.AuthenticateRequest(passphrase=passphrase))

    async def version(self) -> str:
        replies = await self._read(lambda: self._collect("version", pb.VersionRequest()))
        return next((r.version for r in replies if r.version), "")

    async def daemon_info(self) -> DaemonInfo:
        replies = await self._read(lambda: self._collect("daemon_info", pb.DaemonInfoRequest()))
        last = replies[-1] if replies else pb.DaemonInfoReply()
        return DaemonInfo(cpus=last.cpus, memory=last.memory, available_space=last.available_space)

    async def list_instances(self) -> list[Instance]:
        """Every instance with its creation time: one `info` call for all of them.

        `list` replies carry no creation time, which join_timeout and the
        newest/oldest strategies need; `info` with no names answers for all. No
        runtime information is asked for (the daemon would read it from inside each
        running guest, over SSH), so the instances carry no addresses.
        """
        request = pb.InfoRequest(no_runtime_information=True)
        replies = await self._read(lambda: self._collect("info", request))
        out: list[Instance] = []
        for reply in replies:
            for item in reply.details:
                out.append(_instance_from_info(item, runtime=False))
        return out

    async def info(self, names: list[str], *, runtime: bool = False) -> list[Instance]:
        """The named instances; with ``runtime``, their addresses too (running ones only).

        The daemon fills addresses, the guest's release and its memory, disk and CPU
        figures only when runtime information is asked for, and only for a running
        instance: it reads them from inside the guest.
        """
        request = pb.InfoRequest(
            instance_snapshot_pairs=[pb.InstanceSnapshotPair(instance_name=n) for n in names],
            no_runtime_information=not runtime,
        )
        replies = await self._read(lambda: self._collect("info", request))
        return [_instance_from_info(i, runtime=runtime) for r in replies for i in r.details]

    async def find(self) -> ImageCatalogue:
        """The images the daemon can launch by alias (its `find` with no search string)."""
        replies = await self._read(lambda: self._collect("find", pb.FindRequest()))
        names: set[str] = set()
        for reply in replies:
            for image in reply.images_info:
                for alias in image.aliases:
                    if image.remote_name:
                        names.add(f"{image.remote_name}:{alias}")
                    if image.remote_name in ("", RELEASE_REMOTE):
                        names.add(alias)  # the release remote is the default one
        return ImageCatalogue(frozenset(names))

    async def launch(
        self,
        name: str,
        *,
        image: str,
        cpus: int,
        memory: str,
        disk: str,
        user_data: str,
        timeout: float = 600.0,
        exist_ok: bool = True,
    ) -> LaunchResult:
        """Create and start an instance, reading the progress stream to its end."""
        remote, alias = split_image(image)
        request = pb.LaunchRequest(
            instance_name=name,
            image=alias,
            remote_name=remote,
            num_cores=cpus,
            mem_size=memory,
            disk_space=disk,
            cloud_init_user_data=user_data,
            timeout=int(timeout),
        )
        messages: list[str] = []
        try:
            # The daemon waits up to `timeout` for the VM to answer SSH, then up to
            # `timeout` again for cloud-init. A deadline that passes first only ends
            # this call (DeadlineExceeded, temporary): the launch goes on, and a retry
            # finds the name taken, which exist_ok turns into success.
            replies = self._stream(
                "launch",
                request,
                timeout=timeout + 30,
                mapper=lambda exc: map_launch_error(exc, name, image),
            )
            async for reply in replies:
                which = reply.WhichOneof("create_oneof")
                if which == "create_message":
                    messages.append(reply.create_message)
                elif reply.reply_message:
                    messages.append(reply.reply_message)
        except errors.AlreadyExists as exc:
            if exist_ok and exc.name == name:
                return LaunchResult(name, created=False)
            raise
        except errors.ImageNotFound as exc:
            self.refused_images[image] = str(exc)
            raise
        return LaunchResult(name, created=True, messages=tuple(messages))

    async def delete(
        self, names: list[str], *, purge: bool = True, missing_ok: bool = True
    ) -> list[str]:
        """Delete (and purge) instances; a missing one counts as deleted when ``missing_ok``."""
        request = pb.DeleteRequest(
            instance_snapshot_pairs=[pb.InstanceSnapshotPair(instance_name=n) for n in names],
            purge=purge,
        )

        async def call() -> list[Any]:
            return await self._collect("delet", request)

        try:
            replies = await self._read(call)
        except errors.DoesNotExist:
            if not missing_ok:
                raise
            present = {i.name for i in await self.list_instances()}
            remaining = [n for n in names if n in present]
            if not remaining:
                return []
            return await self.delete(remaining, purge=purge, missing_ok=False)
        return [p for r in replies for p in r.purged_instances]

    async def purge(self) -> list[str]:
        replies = await self._collect("purge", pb.PurgeRequest())
        return [p for r in replies for p in r.purged_instances]


def _instance_from_info(item: Any, *, runtime: bool) -> Instance:
    details = item.instance_info
    created: float | None = None
    if details.HasField("creation_timestamp"):
        ts = details.creation_timestamp
        created = ts.seconds + ts.nanos / 1e9
    state_name = pb.InstanceStatus.Status.Name(item.instance_status.status)
    return Instance(
        name=item.name,
        state=InstanceState(state_name),
        created_at=created,
        # The image's release title: filled with or without runtime information.
        image=details.image_release,
        ipv4=tuple(details.ipv4) if runtime else (),
    )
