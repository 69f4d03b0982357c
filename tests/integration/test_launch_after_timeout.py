"""Over the wire: a launch whose call timed out, retried, is success for our own instance.

The executor drives the real Multipass client against the multipassd simulator.
The first attempt's call is cut off the way a passed gRPC deadline cuts it (the
client cancels its stream) once the daemon has created the VM; multipassd goes
on booting it. The executor retries the temporary error and the daemon answers
"already exists": for our own name that is the launch done, one VM and no twin.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reconciler.clock import ManualClock
from reconciler.execute import Executor, ExecutorLimits
from reconciler.model import InstanceState
from reconciler.multipass.client import LaunchResult, MultipassClient
from reconciler.multipass.errors import DeadlineExceeded
from reconciler.multipass.settings import MultipassSettings
from reconciler.plan import Action, ActionKind
from reconciler.sim.certs import generate
from reconciler.sim.multipass_state import GiB, HostCapacity, MultipassState
from reconciler.sim.multipassd_server import MultipassdSimServer
from reconciler.spec import parse_pool_spec

SPEC = parse_pool_spec("web", {"min": "0", "max": "5", "cloud_init_vars": "servers: [10.0.0.1]"}, 1)
NAME = f"web-{SPEC.template_hash}-0"


class FirstCallTimesOut:
    """The real client, except that its first launch is cut off once the VM exists."""

    def __init__(self, client: MultipassClient, daemon: MultipassdSimServer) -> None:
        self.client = client
        self.daemon = daemon
        self.attempts = 0
        self.results: list[LaunchResult] = []

    async def launch(self, name: str, **kw: object) -> LaunchResult:
        self.attempts += 1
        if self.attempts == 1:
            call = asyncio.ensure_future(self.client.launch(name, **kw))  # type: ignore[arg-type]
            while name not in self.daemon.state.instances:
                self.daemon.state.clock.advance(1.0)  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)
            call.cancel()  # what a passed deadline does to the stream
            raise DeadlineExceeded("launch: no answer from multipassd before the deadline")
        result = await self.client.launch(name, **kw)  # type: ignore[arg-type]
        self.results.append(result)
        return result

    async def delete(self, names: list[str], **kw: object) -> object:
        return await self.client.delete(names, **kw)  # type: ignore[arg-type]


class Nodes:
    async def drain_node(self, *_: object, **__: object) -> None:
        raise AssertionError("no drain is planned here")

    async def purge_node(self, *_: object) -> None:
        raise AssertionError("no purge is planned here")


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[MultipassdSimServer]:
    # The daemon on 127.0.0.1 has its leaf issued for that host, as server_name_from gives.
    certs = generate(tmp_path / "certs", server_name="127.0.0.1")
    state = MultipassState(
        ManualClock(),
        random.Random(1),
        boot_seconds=600,  # still booting when the retry comes
        capacity=HostCapacity(cpus=8, memory=8 * GiB, disk=100 * GiB),
    )
    server = MultipassdSimServer(state, certs, passphrase="s3cret")
    server.certs = certs  # type: ignore[attr-defined]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_retried_launch_that_finds_its_own_instance_is_done(
    daemon: MultipassdSimServer,
) -> None:
    certs = daemon.certs  # type: ignore[attr-defined]
    settings = MultipassSettings(
        address=daemon.address,
        client_cert=certs.client_cert.read_bytes(),
        client_key=certs.client_key.read_bytes(),
        server_cert=certs.root_cert.read_bytes(),  # the root CA is what a client pins
    )
    async with MultipassClient(settings, call_timeout=5) as client:
        await client.authenticate("s3cret")
        api = FirstCallTimesOut(client, daemon)
        executor = Executor(
            api, Nodes(), lambda spec, name: "#cloud-config\n", ExecutorLimits(backoff_max=0.05)
        )
        [result] = await executor.execute(SPEC, [Action(ActionKind.LAUNCH, NAME, "scale up")])
    assert result.ok, result.error
    assert api.attempts == 2
    assert [r.created for r in api.results] == [False]  # the daemon said "already exists"
    assert list(daemon.state.instances) == [NAME]  # one VM: the first call's, still booting
    assert daemon.state.instances[NAME].state is InstanceState.STARTING
