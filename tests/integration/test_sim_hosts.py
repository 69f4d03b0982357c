"""`reconciler sim --hosts N`: several simulated multipassd daemons, one simulated Nomad.

Each host answers on its own port with its own root CA and leaf; one client certificate
and one passphrase work on all of them; the sim writes the fleet's variables. Hosts
break and mend (daemon-down/up, power-off/on) in process and through `sim ctl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest

from reconciler.clock import ManualClock
from reconciler.model import InstanceState
from reconciler.multipass import errors
from reconciler.multipass.client import MultipassClient
from reconciler.multipass.settings import MultipassSettings
from reconciler.pools import DEFAULT_PREFIX
from reconciler.sim.certs import fingerprint
from reconciler.sim.multipass_state import GiB, HostCapacity
from reconciler.sim.nomad_state import Policy
from reconciler.sim.world import SimConfig, SimHost, Simulation
from tests.integration.cli_sim import CLI, ROOT, running_sim

PASSPHRASE = "simulator-passphrase"
USER_DATA = """#cloud-config
write_files:
  - path: /etc/nomad.d/client.hcl
    content: |
      client {
        enabled = true
        node_class = "web"
      }
runcmd:
  - systemctl enable --now nomad
"""
HEARTBEAT = 30.0  # SimConfig's heartbeat_timeout
BOOT = 10.0


@pytest.fixture
async def sim() -> AsyncIterator[Simulation]:
    config = SimConfig(
        hosts=3,
        boot_seconds=BOOT,
        heartbeat_timeout=HEARTBEAT,
        capacity=HostCapacity(cpus=4, memory=8 * GiB, disk=100 * GiB),
    )
    async with Simulation(config, ManualClock()) as s:
        yield s


def settings_for(sim: Simulation, host: SimHost) -> MultipassSettings:
    """How the reconciler would reach ``host``: its variable, and the shared credentials."""
    shared = sim.nomad_state.get_var("default", DEFAULT_PREFIX).items
    items = sim.nomad_state.get_var("default", f"{DEFAULT_PREFIX}/hosts/{host.name}").items
    return MultipassSettings(
        address=items["address"],
        client_cert=shared["client_cert"].encode(),
        client_key=shared["client_key"].encode(),
        server_cert=items["server_cert"].encode(),
        server_name=items.get("server_name"),
        passphrase=shared["passphrase"],
    )


@contextlib.asynccontextmanager
async def client_of(sim: Simulation, host: str) -> AsyncIterator[MultipassClient]:
    settings = settings_for(sim, sim.hosts[host])
    async with MultipassClient(settings, call_timeout=3, attempts=1) as client:
        yield client


async def launch(sim: Simulation, host: str, name: str) -> None:
    """A launch over gRPC on ``host``, with the simulated time its VM needs to boot."""
    async with client_of(sim, host) as client:
        call = asyncio.ensure_future(
            client.launch(name, image="24.04", cpus=1, memory="1G", disk="5G", user_data=USER_DATA)
        )
        for _ in range(int(BOOT) + 2):
            await asyncio.sleep(0.01)
            sim.advance(1.0)
            if call.done():
                break
        assert (await call).created


def node_status(sim: Simulation, name: str) -> str:
    node = sim.nomad_state.find_node(name)
    assert node is not None, f"no node {name}"
    return node.status


async def test_three_hosts_are_three_daemons_each_with_its_own_certificates(
    sim: Simulation,
) -> None:
    assert list(sim.hosts) == ["host1", "host2", "host3"]
    hosts = list(sim.hosts.values())
    assert len({h.address for h in hosts}) == 3
    roots = {fingerprint(h.certs.root_cert.read_bytes()) for h in hosts}
    leaves = {fingerprint(h.certs.server_cert.read_bytes()) for h in hosts}
    assert len(roots) == len(leaves) == 3
    assert len({h.certs.client_cert for h in hosts}) == 1  # one client, trusted by all
    assert len({id(h.state) for h in hosts}) == 3
    # The first host keeps the names a single-host simulation had.
    assert sim.multipass_state is sim.hosts["host1"].state
    assert sim.multipassd is sim.hosts["host1"].server
    assert sim.certs == sim.hosts["host1"].certs

    shared = sim.nomad_state.get_var("default", DEFAULT_PREFIX).items
    assert shared["client_cert"] == sim.certs.client_cert.read_text()
    assert shared["passphrase"] == PASSPHRASE
    for host in hosts:
        items = sim.nomad_state.get_var("default", f"{DEFAULT_PREFIX}/hosts/{host.name}").items
        # Leaves are issued for 127.0.0.1, which the address says: no server_name needed.
        assert items == {"address": host.address, "server_cert": host.certs.root_cert.read_text()}
        async with client_of(sim, host.name) as client:  # authenticates with the passphrase
            info = await client.daemon_info()
        assert (info.cpus, info.memory) == (4, 8 * GiB)

    # Each daemon shows its own leaf: pinning another host's root CA fails the handshake.
    wrong = settings_for(sim, sim.hosts["host2"])
    wrong = MultipassSettings(
        address=wrong.address,
        client_cert=wrong.client_cert,
        client_key=wrong.client_key,
        server_cert=sim.hosts["host1"].certs.root_cert.read_bytes(),
    )
    async with MultipassClient(wrong, call_timeout=3, attempts=1) as client:
        with pytest.raises(errors.TlsVerificationFailed):
            await client.version()


async def test_a_launch_on_host2_registers_in_the_one_nomad(sim: Simulation) -> None:
    await launch(sim, "host2", "web-bcdfg-host2-0")
    assert set(sim.hosts["host2"].state.instances) == {"web-bcdfg-host2-0"}
    assert not sim.hosts["host1"].state.instances and not sim.hosts["host3"].state.instances
    sim.advance(10)  # the node's init
    assert node_status(sim, "web-bcdfg-host2-0") == "ready"
    async with client_of(sim, "host1") as client:
        assert await client.list_instances() == []


async def test_daemon_down_refuses_calls_while_its_vms_stay_ready(sim: Simulation) -> None:
    await launch(sim, "host2", "web-bcdfg-host2-0")
    sim.advance(10)
    await sim.host_daemon_down("host2")
    assert not sim.hosts["host2"].daemon_up
    async with client_of(sim, "host1") as client:  # the other hosts answer
        await client.version()
    settings = settings_for(sim, sim.hosts["host2"])
    with pytest.raises(errors.MultipassUnavailable, match="Connection refused"):
        async with MultipassClient(settings, call_timeout=3, attempts=1) as client:
            await client.list_instances()
    sim.advance(HEARTBEAT * 3)
    assert node_status(sim, "web-bcdfg-host2-0") == "ready"
    assert sim.hosts["host2"].state.instances["web-bcdfg-host2-0"].state is InstanceState.RUNNING

    await sim.host_daemon_up("host2")
    async with client_of(sim, "host2") as client:
        [inst] = await client.list_instances()
    assert (inst.name, inst.state) == ("web-bcdfg-host2-0", InstanceState.RUNNING)


async def test_power_off_takes_the_nodes_down_and_power_on_brings_them_back(
    sim: Simulation,
) -> None:
    await launch(sim, "host2", "web-bcdfg-host2-0")
    await launch(sim, "host3", "web-bcdfg-host3-0")
    sim.advance(10)
    await sim.host_power_off("host2")
    listing = {h["Name"]: h for h in sim.host_listing()}
    assert (listing["host2"]["Daemon"], listing["host2"]["Power"]) == ("down", "off")
    sim.advance(HEARTBEAT - 2)
    assert node_status(sim, "web-bcdfg-host2-0") == "ready"  # not yet: the timeout runs
    sim.advance(3)
    assert node_status(sim, "web-bcdfg-host2-0") == "down"
    assert node_status(sim, "web-bcdfg-host3-0") == "ready"  # the other host goes on
    settings = settings_for(sim, sim.hosts["host2"])
    with pytest.raises(errors.MultipassUnavailable, match="Connection refused"):
        async with MultipassClient(settings, call_timeout=3, attempts=1) as client:
            await client.version()

    await sim.host_power_on("host2")
    async with client_of(sim, "host2") as client:
        [inst] = await client.list_instances()
    assert (inst.name, inst.state) == ("web-bcdfg-host2-0", InstanceState.RUNNING)
    sim.advance(10)  # the node's init after it comes back
    assert node_status(sim, "web-bcdfg-host2-0") == "ready"
    sim.advance(HEARTBEAT * 2)
    assert node_status(sim, "web-bcdfg-host2-0") == "ready"  # heartbeating again


async def test_a_vm_booting_when_the_power_went_boots_again_with_it(sim: Simulation) -> None:
    host = sim.hosts["host3"]
    host.state.begin_launch("web-bcdfg-host3-0")
    host.state.create("web-bcdfg-host3-0", "24.04", 1, GiB, 5 * GiB, USER_DATA)
    sim.advance(BOOT / 2)
    await sim.host_power_off("host3")
    sim.advance(BOOT * 2)  # no power: no boot, no node
    assert sim.nomad_state.find_node("web-bcdfg-host3-0") is None
    await sim.host_power_on("host3")
    sim.advance(BOOT - 1)
    assert sim.nomad_state.find_node("web-bcdfg-host3-0") is None  # the boot starts over
    sim.advance(2)
    assert host.state.instances["web-bcdfg-host3-0"].state is InstanceState.RUNNING
    assert sim.nomad_state.find_node("web-bcdfg-host3-0") is not None


async def test_a_single_host_simulation_is_as_before() -> None:
    async with Simulation(SimConfig(), ManualClock()) as sim:
        assert list(sim.hosts) == ["default"]
        assert sim.nomad_state.list_vars("*") == []  # nothing written
        assert sim.environment()["MULTIPASS_SERVER_ADDRESS"] == sim.hosts["default"].address
        assert sim.certs.root_cert == sim.state_dir / "certs" / "multipass_root_cert.pem"
        await sim.host_daemon_down("default")  # controllable all the same
        assert not sim.hosts["default"].daemon_up
        await sim.host_daemon_up("default")
        assert sim.hosts["default"].daemon_up


async def test_the_control_path_names_what_is_allowed(sim: Simulation) -> None:
    async with httpx.AsyncClient(base_url=sim.nomad.address) as http:
        r = await http.post("/v1/sim/hosts/host9/power-off")
        assert r.status_code == 404 and "host1, host2, host3" in r.text
        r = await http.post("/v1/sim/hosts/host2/reboot")
        assert r.status_code == 400
        assert "daemon-down, daemon-up, power-off, power-on" in r.text
        r = await http.post("/v1/sim/hosts/host2/daemon-down")
        assert r.status_code == 200 and r.json()["Daemon"] == "down"
        listing = (await http.get("/v1/sim/hosts")).json()
        assert [(h["Name"], h["Daemon"], h["Power"]) for h in listing] == [
            ("host1", "up", "on"),
            ("host2", "down", "on"),
            ("host3", "up", "on"),
        ]


async def test_the_control_path_wants_a_management_token_with_acls() -> None:
    async with Simulation(SimConfig(hosts=2, acl=True), ManualClock()) as sim:
        token = sim.nomad_state.add_token(Policy(management=True))
        async with httpx.AsyncClient(base_url=sim.nomad.address) as http:
            r = await http.post("/v1/sim/hosts/host2/daemon-down")
            assert r.status_code == 403
            r = await http.post("/v1/sim/hosts/host2/daemon-down", headers={"X-Nomad-Token": token})
            assert r.status_code == 200
        assert not sim.hosts["host2"].daemon_up


def ctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "sim", "ctl", "host", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_sim_hosts_and_sim_ctl_from_the_command_line() -> None:
    with running_sim("--hosts", "3", "--host-cpus", "4") as env:
        listing = httpx.get(f"{env['NOMAD_ADDR']}/v1/sim/hosts").json()
        assert [h["Name"] for h in listing] == ["host1", "host2", "host3"]
        assert env["MULTIPASS_SERVER_ADDRESS"] == listing[0]["Address"]
        variables = httpx.get(f"{env['NOMAD_ADDR']}/v1/vars?prefix={DEFAULT_PREFIX}").json()
        assert sorted(v["Path"] for v in variables) == [
            DEFAULT_PREFIX,
            *(f"{DEFAULT_PREFIX}/hosts/host{k}" for k in (1, 2, 3)),
        ]
        bad_host = ctl(env, "host7", "power-off")
        assert bad_host.returncode == 1
        assert "host7" in bad_host.stderr and "host1, host2, host3" in bad_host.stderr
        bad_action = ctl(env, "host2", "reboot")
        assert bad_action.returncode == 1
        assert "daemon-down" in bad_action.stderr and "power-on" in bad_action.stderr
        down = ctl(env, "host2", "power-off")
        assert down.returncode == 0, down.stderr
        assert down.stdout.strip().startswith("host2: daemon down, power off")
        listing = httpx.get(f"{env['NOMAD_ADDR']}/v1/sim/hosts").json()
        assert [h["Power"] for h in listing] == ["on", "off", "on"]
        up = ctl(env, "host2", "power-on")
        assert up.returncode == 0 and "daemon up, power on" in up.stdout
