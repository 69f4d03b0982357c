"""The Multipass client against the multipassd simulator, over gRPC with mutual TLS."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from reconciler.clock import ManualClock
from reconciler.errors import ConfigError
from reconciler.model import InstanceState
from reconciler.multipass import errors
from reconciler.multipass._pb import multipass_pb2 as pb
from reconciler.multipass.client import LaunchResult, MultipassClient
from reconciler.multipass.settings import MultipassSettings
from reconciler.sim.certs import SimCertificates, generate
from reconciler.sim.faults import Fault
from reconciler.sim.multipass_state import GiB, HostCapacity, MultipassState
from reconciler.sim.multipassd_server import (
    NO_PASSPHRASE_MESSAGE,
    NO_PASSPHRASE_MESSAGE_OLD,
    MultipassdSimServer,
)
from reconciler.spec import parse_pool_spec


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> SimCertificates:
    return generate(tmp_path_factory.mktemp("certs"), server_name="127.0.0.1")


@contextlib.asynccontextmanager
async def running_daemon(
    certs: SimCertificates, **state_options: Any
) -> AsyncIterator[MultipassdSimServer]:
    state = MultipassState(
        ManualClock(),
        random.Random(1),
        boot_seconds=30,
        capacity=HostCapacity(cpus=8, memory=8 * GiB, disk=100 * GiB),
        **state_options,
    )
    server = MultipassdSimServer(state, certs, passphrase="s3cret")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def daemon(certs: SimCertificates) -> AsyncIterator[MultipassdSimServer]:
    async with running_daemon(certs) as server:
        yield server


def settings(certs: SimCertificates, address: str, **kw: object) -> MultipassSettings:
    values: dict[str, object] = dict(
        address=address,
        client_cert=certs.client_cert.read_bytes(),
        client_key=certs.client_key.read_bytes(),
        server_cert=certs.root_cert.read_bytes(),
    )
    values.update(kw)
    return MultipassSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client(
    daemon: MultipassdSimServer, certs: SimCertificates
) -> AsyncIterator[MultipassClient]:
    async with MultipassClient(settings(certs, daemon.address), call_timeout=5) as c:
        await c.authenticate("s3cret")
        yield c


async def boot(daemon: MultipassdSimServer, seconds: float = 31) -> None:
    """Let the simulated VMs boot: advance the daemon's clock and tick."""
    await asyncio.sleep(0.05)
    daemon.state.clock.advance(seconds)  # type: ignore[attr-defined]
    daemon.tick()


async def launch(
    client: MultipassClient, daemon: MultipassdSimServer, name: str, **options: Any
) -> LaunchResult:
    """Launch and let the VM boot: the call answers once the simulated clock has moved."""
    kw: dict[str, Any] = dict(
        image="24.04", cpus=2, memory="2G", disk="10G", user_data="#cloud-config\n"
    )
    kw.update(options)
    task = asyncio.create_task(client.launch(name, **kw))
    await until(lambda: name in daemon.state.instances or task.done())
    await boot(daemon)
    return await task


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run (calls reach the daemon) until ``condition`` holds."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_untrusted_certificate_is_refused_until_authenticated(
    daemon: MultipassdSimServer, certs: SimCertificates
) -> None:
    async with MultipassClient(settings(certs, daemon.address), call_timeout=5) as c:
        with pytest.raises(
            errors.NotAuthenticated, match="not authenticated with the Multipass service"
        ):
            await c.list_instances()
        with pytest.raises(errors.WrongPassphrase, match="Passphrase is not correct"):
            await c.authenticate("guess")
        assert daemon.trusted == set()
        with pytest.raises(errors.NotAuthenticated):
            await c.list_instances()
        await c.authenticate("s3cret")
        assert await c.list_instances() == []


def _own_certificate(tmp_path: Path) -> tuple[bytes, bytes]:
    """A user's own self-signed client certificate, that the simulator never issued."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "someone's laptop")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


async def test_any_client_certificate_is_accepted_at_tls_and_trusted_only_after_authenticate(
    daemon: MultipassdSimServer, certs: SimCertificates, tmp_path: Path
) -> None:
    cert, key = _own_certificate(tmp_path)
    own = settings(certs, daemon.address, client_cert=cert, client_key=key)
    async with MultipassClient(own, call_timeout=5) as c:
        with pytest.raises(errors.NotAuthenticated):
            await c.list_instances()
        await c.authenticate("s3cret")
        assert await c.list_instances() == []
    # Trust is the certificate's, not the connection's: a new connection is trusted too.
    async with MultipassClient(own, call_timeout=5) as again:
        assert await again.list_instances() == []
    # ... and only that certificate's.
    async with MultipassClient(settings(certs, daemon.address), call_timeout=5) as other:
        with pytest.raises(errors.NotAuthenticated):
            await other.list_instances()


async def test_the_tls_name_is_the_host_of_the_address_as_the_daemon_issues_it(
    daemon: MultipassdSimServer, certs: SimCertificates
) -> None:
    # The leaf is issued for 127.0.0.1, the host of the address: no override needed.
    assert settings(certs, daemon.address).tls_server_name == "127.0.0.1"
    async with MultipassClient(settings(certs, daemon.address), call_timeout=5) as c:
        await c.authenticate("s3cret")
    wrong = settings(certs, daemon.address, server_name="localhost")
    with pytest.raises((errors.TlsVerificationFailed, errors.MultipassUnavailable)):
        async with MultipassClient(wrong, call_timeout=5, attempts=1) as c:
            await c.authenticate("s3cret")


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("unix:/var/snap/multipass/common/multipass_socket", "localhost"),
        ("0.0.0.0:50051", "0.0.0.0"),
        ("10.0.0.5:50051", "10.0.0.5"),
        ("[fd00::5]:50051", "fd00::5"),
        ("mp.lab:50051", "mp.lab"),
    ],
)
def test_server_name_from_the_address(address: str, name: str) -> None:
    from reconciler.multipass.settings import server_name_from

    assert server_name_from(address) == name


@pytest.mark.parametrize("message", [NO_PASSPHRASE_MESSAGE, NO_PASSPHRASE_MESSAGE_OLD])
async def test_no_passphrase_set_is_recognised_in_any_wording(
    certs: SimCertificates, message: str
) -> None:
    server = MultipassdSimServer(MultipassState(ManualClock()), certs, passphrase=None)
    server.no_passphrase_message = message
    await server.start()
    try:
        async with MultipassClient(settings(certs, server.address), call_timeout=5) as c:
            with pytest.raises(errors.PassphraseNotSet) as exc:
                await c.authenticate("anything")
        assert message in str(exc.value)
        assert server.trusted == set()
    finally:
        await server.stop()


async def test_launch_list_info_delete(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    result = await launch(client, daemon, "web-bcdfg-0")
    assert result.created
    [inst] = await client.list_instances()
    assert inst.name == "web-bcdfg-0"
    assert inst.state is InstanceState.RUNNING
    assert inst.created_at == pytest.approx(daemon.state.instances["web-bcdfg-0"].created_at)
    assert inst.image == "24.04 LTS"  # the release title, as info's image_release
    [same] = await client.info(["web-bcdfg-0"])
    assert same == inst
    assert daemon.state.instances["web-bcdfg-0"].user_data == "#cloud-config\n"
    assert await client.delete(["web-bcdfg-0"]) == ["web-bcdfg-0"]
    assert await client.list_instances() == []


async def test_launch_is_idempotent_by_name(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    await launch(client, daemon, "a-1")
    again = await client.launch("a-1", image="24.04", cpus=1, memory="1G", disk="5G", user_data="")
    assert not again.created
    with pytest.raises(errors.AlreadyExists) as exc:
        await client.launch(
            "a-1", image="24.04", cpus=1, memory="1G", disk="5G", user_data="", exist_ok=False
        )
    assert exc.value.name == "a-1"
    assert len(daemon.state.instances) == 1


async def test_a_name_being_prepared_is_a_temporary_error(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    daemon.state.preparing.add("b-1")
    with pytest.raises(errors.BeingPrepared, match='instance "b-1" is being prepared'):
        await client.launch("b-1", image="24.04", cpus=1, memory="1G", disk="5G", user_data="")


async def test_delete_of_missing_instance(client: MultipassClient) -> None:
    assert await client.delete(["ghost"], missing_ok=True) == []
    with pytest.raises(errors.DoesNotExist, match='instance "ghost" does not exist'):
        await client.delete(["ghost"], missing_ok=False)


async def test_daemon_info_reports_host_totals_whatever_runs(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    before = await client.daemon_info()
    assert (before.cpus, before.memory, before.available_space) == (8, 8 * GiB, 100 * GiB)
    await launch(client, daemon, "big-1", memory="6G", disk="40G")
    assert await client.daemon_info() == before


async def test_memory_the_host_lacks_leaves_a_stopped_instance(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    await launch(client, daemon, "big-1", memory="6G")
    # The daemon does not check memory: the VM is created and fails to start.
    with pytest.raises(errors.LaunchFailed, match="Instance shutdown during start") as exc:
        await client.launch("big-2", image="24.04", cpus=2, memory="3G", disk="5G", user_data="")
    assert exc.value.instance_kept and exc.value.name == "big-2"
    [stopped] = await client.info(["big-2"])
    assert stopped.state is InstanceState.STOPPED
    # A stopped VM holds no memory: once big-1 is gone, 6G start beside stopped big-2.
    assert await client.delete(["big-1"]) == ["big-1"]
    assert (await launch(client, daemon, "big-3", memory="6G")).created


async def test_disk_below_the_image_minimum_fails_the_launch_and_frees_the_name(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    with pytest.raises(errors.LaunchFailed, match=r"Requested disk \(\d+ bytes\) below minimum"):
        await client.launch("small", image="24.04", cpus=1, memory="1G", disk="2G", user_data="")
    await launch(client, daemon, "full", memory="1G", disk="97G")
    daemon.state.use_disk("full", 96 * GiB)  # the guest fills its disk: 3G left on the host
    with pytest.raises(errors.InsufficientCapacity, match=r"Available disk \(3221225472 bytes\)"):
        await client.launch("small", image="24.04", cpus=1, memory="1G", disk="5G", user_data="")
    assert sorted(daemon.state.instances) == ["full"] and not daemon.state.preparing
    # A free disk above the image's size suffices, however big the request: only a warning.
    await client.delete(["full"])
    assert (await launch(client, daemon, "small", memory="1G", disk="500G")).created


async def test_a_launch_failing_after_preparing_is_a_failed_precondition(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    daemon.launch_failure = Fault(error_rate=1.0)
    with pytest.raises(errors.LaunchFailed, match="simulated failure") as exc:
        await client.launch("f-1", image="24.04", cpus=1, memory="1G", disk="5G", user_data="")
    assert not exc.value.instance_kept
    assert "f-1" not in daemon.state.instances and not daemon.state.preparing
    daemon.launch_failure = Fault()
    assert (await launch(client, daemon, "f-1")).created  # the name was released


async def test_a_launch_whose_vm_misses_its_timeout_leaves_it_unknown_and_kept(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    task = asyncio.create_task(
        client.launch(
            "slow-1", image="24.04", cpus=1, memory="1G", disk="5G", user_data="", timeout=10
        )
    )
    await until(lambda: "slow-1" in daemon.state.instances)
    await asyncio.sleep(0.05)
    daemon.state.clock.advance(11)  # type: ignore[attr-defined]
    daemon.tick()
    with pytest.raises(
        errors.LaunchTimedOut, match="slow-1: timed out waiting for response"
    ) as exc:
        await task
    assert exc.value.instance_kept and exc.value.name == "slow-1"
    assert "The following errors occurred:" in str(exc.value)
    # The daemon keeps it, in state UNKNOWN, and does not look again by itself: the
    # guest boots (its cloud-init runs, its node may join) but the state stays.
    [kept] = await client.info(["slow-1"])
    assert kept.state is InstanceState.UNKNOWN
    await boot(daemon)
    [later] = await client.list_instances()
    assert (later.name, later.state) == ("slow-1", InstanceState.UNKNOWN)
    # Its name is taken: a retry of the launch is "already exists", success for exist_ok.
    again = await client.launch(
        "slow-1", image="24.04", cpus=1, memory="1G", disk="5G", user_data=""
    )
    assert not again.created


async def test_the_launch_stream_says_waiting_for_initialization_only_once_the_vm_answers(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    booted = await launch(client, daemon, "m-1")
    assert booted.messages == (
        "Creating m-1 in zone1",
        "Preparing image for m-1",
        "Configuring m-1",
        "Starting m-1",
        "Waiting for initialization to complete",
    )


async def test_a_raw_timed_out_launch_names_the_instance_and_never_waits_for_init(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    call = client.stub.launch(timeout=5)
    await call.write(pb.LaunchRequest(instance_name="m-3", image="24.04", timeout=5))
    await call.done_writing()
    seen: list[str] = []

    async def read() -> None:
        async for reply in call:
            which = reply.WhichOneof("create_oneof")
            seen.append(
                reply.reply_message
                or (getattr(reply, which) if which != "launch_progress" else "%")
            )

    reader = asyncio.create_task(read())
    await until(lambda: "m-3" in daemon.state.instances)
    await asyncio.sleep(0.05)
    daemon.state.clock.advance(6)  # type: ignore[attr-defined]
    daemon.tick()
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await reader
    assert exc.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (
        exc.value.details() == "The following errors occurred:\nm-3: timed out waiting for response"
    )
    assert "Waiting for initialization to complete" not in seen
    assert seen[0] == "Creating m-3 in zone1" and seen[-2:] == ["Starting m-3", "m-3"]


async def test_a_name_is_being_prepared_for_a_while_and_a_cancel_does_not_stop_it(
    certs: SimCertificates,
) -> None:
    async with (
        running_daemon(certs, prepare_seconds=20) as daemon,
        MultipassClient(settings(certs, daemon.address), call_timeout=5) as c,
    ):
        await c.authenticate("s3cret")
        first = asyncio.create_task(
            c.launch("p-1", image="24.04", cpus=1, memory="1G", disk="5G", user_data="")
        )
        await until(lambda: "p-1" in daemon.state.preparing)
        with pytest.raises(errors.BeingPrepared, match='instance "p-1" is being prepared'):
            await c.launch("p-1", image="24.04", cpus=1, memory="1G", disk="5G", user_data="")
        assert await c.list_instances() == []  # the daemon lists no instance yet
        # The caller goes away (a crash, a cancelled pass); the daemon carries on.
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        await asyncio.sleep(0.05)
        daemon.state.clock.advance(30)  # type: ignore[attr-defined]
        await until(lambda: "p-1" in daemon.state.instances)
        assert not daemon.state.preparing
        await boot(daemon)
        [inst] = await c.list_instances()
        assert (inst.name, inst.state) == ("p-1", InstanceState.RUNNING)
        again = await c.launch("p-1", image="24.04", cpus=1, memory="1G", disk="5G", user_data="")
        assert not again.created


async def test_list_rpc_over_the_wire(client: MultipassClient, daemon: MultipassdSimServer) -> None:
    await launch(client, daemon, "l-2")
    await launch(client, daemon, "l-1")
    replies = await client._collect("list", pb.ListRequest())
    listed = [
        (i.name, pb.InstanceStatus.Status.Name(i.instance_status.status))
        for r in replies
        for i in r.instance_list.instances
    ]
    assert listed == [("l-1", "RUNNING"), ("l-2", "RUNNING")]
    # Addresses only when asked for, and only of running instances.
    assert all(not i.ipv4 for r in replies for i in r.instance_list.instances)
    daemon.state.stop("l-2")
    asked = await client._collect("list", pb.ListRequest(request_ipv4=True))
    ipv4 = {i.name: list(i.ipv4) for r in asked for i in r.instance_list.instances}
    assert ipv4 == {"l-1": list(daemon.state.instances["l-1"].ipv4), "l-2": []}


async def test_info_has_runtime_figures_only_when_asked_and_only_when_running(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    await launch(client, daemon, "r-1", memory="2G", disk="10G")
    [plain] = await client.info(["r-1"])
    assert plain.ipv4 == ()
    [runtime] = await client.info(["r-1"], runtime=True)
    assert runtime.ipv4 == daemon.state.instances["r-1"].ipv4
    raw = await client._collect(
        "info",
        pb.InfoRequest(instance_snapshot_pairs=[pb.InstanceSnapshotPair(instance_name="r-1")]),
    )
    item = raw[0].details[0]
    assert (item.memory_total, item.disk_total, item.cpu_count) == (
        str(2 * GiB),
        str(10 * GiB),
        "2",
    )
    bare = await client._collect(
        "info",
        pb.InfoRequest(
            instance_snapshot_pairs=[pb.InstanceSnapshotPair(instance_name="r-1")],
            no_runtime_information=True,
        ),
    )
    item = bare[0].details[0]
    assert (item.memory_total, item.cpu_count, list(item.instance_info.ipv4)) == ("", "", [])
    assert item.instance_info.image_release == "24.04 LTS"  # never runtime information
    daemon.state.stop("r-1")
    [stopped] = await client.info(["r-1"], runtime=True)
    assert stopped.ipv4 == ()


async def test_info_and_delete_of_missing_names_name_them_all_wrapped(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    await launch(client, daemon, "here")
    with pytest.raises(errors.DoesNotExist) as exc:
        await client.info(["ghost-1", "here", "ghost-2"])
    assert exc.value.names == ("ghost-1", "ghost-2")
    assert "The following errors occurred:" in str(exc.value)
    with pytest.raises(errors.DoesNotExist) as exc:
        await client.delete(["ghost-3", "here"], missing_ok=False)
    assert exc.value.names == ("ghost-3",)
    assert "here" in daemon.state.instances  # the daemon checks every name first
    assert await client.delete(["ghost-3", "here"], missing_ok=True) == ["here"]


async def test_purge_removes_only_deleted_instances(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    await launch(client, daemon, "k-1")
    await launch(client, daemon, "d-1")
    assert await client.delete(["d-1"], purge=False) == []
    [deleted] = await client.info(["d-1"])
    assert deleted.state is InstanceState.DELETED
    assert await client.purge() == ["d-1"]
    assert [i.name for i in await client.list_instances()] == ["k-1"]
    assert await client.purge() == []


async def test_version(client: MultipassClient) -> None:
    assert await client.version() == "1.15.0"


async def test_flaky_reads_succeed_through_retries(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    daemon.faults.reseed(4)
    daemon.faults.set("info", Fault(error_rate=0.3))
    for _ in range(5):
        assert await client.list_instances() == []
    assert daemon.calls["info"] > 5  # some calls failed and were retried


async def test_always_failing_reads_surface_as_unavailable(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    daemon.faults.set("info", Fault(error_rate=1.0))
    with pytest.raises(errors.MultipassUnavailable):
        await client.list_instances()


async def test_a_hanging_daemon_hits_the_deadline(
    daemon: MultipassdSimServer, certs: SimCertificates
) -> None:
    daemon.faults.set("version", Fault(hang=True))
    async with MultipassClient(settings(certs, daemon.address), call_timeout=0.3, attempts=1) as c:
        await c.authenticate("s3cret")
        with pytest.raises(errors.DeadlineExceeded):
            await c.version()


async def test_pinning_rejects_a_different_daemon_certificate(
    daemon: MultipassdSimServer, certs: SimCertificates, tmp_path: Path
) -> None:
    other = generate(tmp_path / "other")
    wrong = settings(certs, daemon.address, server_cert=other.root_cert.read_bytes())
    async with MultipassClient(wrong, call_timeout=3, attempts=1) as c:
        with pytest.raises(errors.TlsVerificationFailed, match="MULTIPASS_SERVER_CERT"):
            await c.authenticate("s3cret")
    assert daemon.trusted == set()


async def test_skip_verify_trusts_on_first_use(
    daemon: MultipassdSimServer, certs: SimCertificates, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings(certs, daemon.address, server_cert=None, insecure_skip_verify=True)
    async with MultipassClient(s, call_timeout=5) as c:
        await c.authenticate("s3cret")
        assert await c.list_instances() == []
    assert "INSECURE" in caplog.text


async def test_unreachable_daemon_is_unavailable(certs: SimCertificates) -> None:
    async with MultipassClient(settings(certs, "127.0.0.1:1"), call_timeout=2, attempts=2) as c:
        with pytest.raises(errors.MultipassUnavailable):
            await c.list_instances()


def test_settings_name_the_missing_file_and_require_a_pin(
    tmp_path: Path, certs: SimCertificates
) -> None:
    with pytest.raises(ConfigError, match=r"MULTIPASS_CLIENT_KEY: .*nope\.pem does not exist"):
        MultipassSettings.from_env(
            {
                "MULTIPASS_CLIENT_CERT": str(certs.client_cert),
                "MULTIPASS_CLIENT_KEY": str(tmp_path / "nope.pem"),
                "MULTIPASS_SERVER_CERT": str(certs.root_cert),
            }
        )
    with pytest.raises(ConfigError, match="not pinned"):
        MultipassSettings.from_env(
            {
                "MULTIPASS_CLIENT_CERT": str(certs.client_cert),
                "MULTIPASS_CLIENT_KEY": str(certs.client_key),
            }
        )
    s = MultipassSettings.from_env(
        {
            "MULTIPASS_CLIENT_CERT": str(certs.client_cert),
            "MULTIPASS_CLIENT_KEY": str(certs.client_key),
            "MULTIPASS_SERVER_CERT": str(certs.root_cert),
            "MULTIPASS_SERVER_ADDRESS": "127.0.0.1:5",
            "MULTIPASS_PASSPHRASE": "hunter2",
        }
    )
    assert "hunter2" not in repr(s) and "PRIVATE" not in repr(s)


@pytest.mark.parametrize(
    ("mem_size", "disk_space"),
    [
        ("512M", "4G"),
        ("1.5G", "5G"),
        ("2GiB", "5gb"),
        ("524288K", "5120M"),
        ("536870912", "5368709120B"),
        (" 1g ", "5GiB"),
        ("", ""),  # the daemon's defaults: 1G memory, 5G (or the image's minimum) disk
    ],
)
async def test_the_daemon_takes_sizes_in_its_own_grammar(
    client: MultipassClient, daemon: MultipassdSimServer, mem_size: str, disk_space: str
) -> None:
    request = pb.LaunchRequest(
        instance_name="s-1", image="24.04", mem_size=mem_size, disk_space=disk_space
    )
    task = asyncio.create_task(client._collect("launch", request))
    await until(lambda: "s-1" in daemon.state.instances or task.done())
    await boot(daemon)
    await task
    assert "s-1" in daemon.state.instances


@pytest.mark.parametrize(
    ("mem_size", "disk_space"),
    [
        ("1T", "5G"),  # no T in the daemon's grammar
        ("1G", "1T"),
        ("1.5", "5G"),  # a decimal needs a unit
        ("2 G", "5G"),
        ("1GB2", "5G"),
        ("-1G", "5G"),
        ("511M", "5G"),  # below the minimums: 512M memory, 1G disk
        ("1G", "1023M"),
    ],
)
async def test_the_daemon_refuses_other_sizes_before_anything_is_created(
    client: MultipassClient, daemon: MultipassdSimServer, mem_size: str, disk_space: str
) -> None:
    with pytest.raises(errors.InvalidRequest, match=r"Invalid arguments supplied$"):
        await client.launch(
            "s-2", image="24.04", cpus=1, memory=mem_size, disk=disk_space, user_data=""
        )
    assert not daemon.state.instances and not daemon.state.preparing


async def test_a_spec_of_a_whole_tib_goes_out_in_g_and_launches(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    items = {"min": "1", "max": "1", "memory": "1G", "disk": "1T"}
    spec = parse_pool_spec("big", {**items, "cloud_init_vars": "servers: [10.0.0.2]"}, 1)
    assert spec.disk == "1024G"
    result = await launch(client, daemon, "big-1", memory=spec.memory, disk=spec.disk)
    assert result.created and daemon.state.instances["big-1"].disk == 1024 * GiB


async def test_an_image_the_daemon_does_not_know_is_refused_before_anything_is_created(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    with pytest.raises(errors.ImageNotFound) as exc:
        await client.launch("i-1", image="18.04", cpus=1, memory="1G", disk="5G", user_data="")
    assert exc.value.image == "18.04" and not exc.value.instance_kept
    assert 'Unable to find an image matching "18.04"' in str(exc.value)
    assert not daemon.state.instances and not daemon.state.preparing
    # A remote's image goes with the remote in its own field, as the multipass CLI sends it.
    assert (await launch(client, daemon, "i-2", image="daily:26.10")).created
    with pytest.raises(errors.ImageNotFound):
        await client.launch(
            "i-3", image="daily:24.04", cpus=1, memory="1G", disk="5G", user_data=""
        )


async def test_find_lists_what_the_daemon_launches(client: MultipassClient) -> None:
    catalogue = await client.find()
    for image in ("24.04", "noble", "lts", "release:24.04", "daily:26.10", "", "file:///x.img"):
        assert catalogue.offers(image), image
    for image in ("18.04", "daily:24.04", "release:26.10", "nosuch:24.04"):
        assert not catalogue.offers(image), image


async def test_free_disk_is_what_the_host_has_left_not_what_instances_asked_for(
    client: MultipassClient, daemon: MultipassdSimServer
) -> None:
    # A 100G host: a 1T disk is sparse, so it takes only what the guest writes.
    await launch(client, daemon, "huge", memory="1G", disk="1024G")
    assert (await launch(client, daemon, "next", memory="1G", disk="10G")).created
    assert daemon.state.disk_free() == 100 * GiB - 2 * GiB  # two fresh images
