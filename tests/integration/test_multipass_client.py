"""The Multipass client against the multipassd simulator, over gRPC with mutual TLS."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.clock import ManualClock
from reconciler.errors import ConfigError
from reconciler.model import InstanceState
from reconciler.multipass import errors
from reconciler.multipass.client import LaunchResult, MultipassClient
from reconciler.multipass.settings import MultipassSettings
from reconciler.sim.certs import SimCertificates, generate
from reconciler.sim.faults import Fault
from reconciler.sim.multipass_state import GiB, HostCapacity, MultipassState
from reconciler.sim.multipassd_server import MultipassdSimServer


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> SimCertificates:
    return generate(tmp_path_factory.mktemp("certs"))


@pytest.fixture
async def daemon(certs: SimCertificates) -> AsyncIterator[MultipassdSimServer]:
    state = MultipassState(
        ManualClock(),
        random.Random(1),
        boot_seconds=30,
        capacity=HostCapacity(cpus=8, memory=8 * GiB, disk=100 * GiB),
    )
    server = MultipassdSimServer(state, certs, passphrase="s3cret")
    await server.start()
    yield server
    await server.stop()


def settings(certs: SimCertificates, address: str, **kw: object) -> MultipassSettings:
    values: dict[str, object] = dict(
        address=address,
        client_cert=certs.client_cert.read_bytes(),
        client_key=certs.client_key.read_bytes(),
        server_cert=certs.server_cert.read_bytes(),
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


async def launch(client: MultipassClient, daemon: MultipassdSimServer, name: str) -> LaunchResult:
    task = asyncio.create_task(
        client.launch(
            name, image="24.04", cpus=2, memory="2G", disk="10G", user_data="#cloud-config\n"
        )
    )
    for _ in range(50):
        if name in daemon.state.instances or task.done():
            break
        await asyncio.sleep(0.02)
    await boot(daemon)
    return await task


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
        await c.authenticate("s3cret")
        assert await c.list_instances() == []


async def test_no_passphrase_set_is_a_failed_precondition(certs: SimCertificates) -> None:
    server = MultipassdSimServer(MultipassState(ManualClock()), certs, passphrase=None)
    await server.start()
    try:
        async with MultipassClient(settings(certs, server.address), call_timeout=5) as c:
            with pytest.raises(errors.PassphraseNotSet, match="Passphrase is not set"):
                await c.authenticate("anything")
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
    assert inst.ipv4
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


async def test_capacity_is_finite(client: MultipassClient, daemon: MultipassdSimServer) -> None:
    info = await client.daemon_info()
    assert info.memory == 8 * GiB
    await launch(client, daemon, "big-1")
    with pytest.raises(errors.InsufficientCapacity, match="Insufficient memory"):
        await client.launch("big-2", image="24.04", cpus=2, memory="7G", disk="5G", user_data="")
    assert "big-2" not in daemon.state.instances
    assert (await client.daemon_info()).memory == 6 * GiB


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
    wrong = settings(certs, daemon.address, server_cert=other.server_cert.read_bytes())
    async with MultipassClient(wrong, call_timeout=3, attempts=1) as c:
        with pytest.raises((errors.TlsVerificationFailed, errors.MultipassUnavailable)):
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
                "MULTIPASS_SERVER_CERT": str(certs.server_cert),
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
            "MULTIPASS_SERVER_CERT": str(certs.server_cert),
            "MULTIPASS_SERVER_ADDRESS": "127.0.0.1:5",
            "MULTIPASS_PASSPHRASE": "hunter2",
        }
    )
    assert "hunter2" not in repr(s) and "PRIVATE" not in repr(s)
