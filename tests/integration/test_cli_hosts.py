"""`reconciler hosts` as a user runs it, against `reconciler sim` (today's single host)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from reconciler.hosts_view import HOSTS_SCHEMA
from reconciler.pools import DEFAULT_PREFIX
from tests.integration.cli_sim import CLI, ROOT, running_sim

G = 1 << 30


@pytest.fixture(scope="module")
def sim_env() -> Iterator[dict[str, str]]:
    with running_sim("--speed", "20", "--boot-seconds", "10") as env:
        yield env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def put_pool(env: dict[str, str], pool: str, items: dict[str, str]) -> None:
    body = {"Path": f"{DEFAULT_PREFIX}/pools/{pool}", "Items": items}
    r = httpx.put(f"{env['NOMAD_ADDR']}/v1/var/{DEFAULT_PREFIX}/pools/{pool}", json=body)
    r.raise_for_status()


def test_hosts_lists_the_single_host_its_use_and_members(sim_env: dict[str, str]) -> None:
    empty = run(sim_env, "hosts")
    assert empty.returncode == 0, empty.stderr
    first = empty.stdout.splitlines()[1].split()
    assert first[:2] == ["default", "yes"] and first[3] == "0"

    items = {"min": "2", "max": "3", "cpus": "2", "memory": "1G", "disk": "5G"}
    put_pool(sim_env, "web", {**items, "cloud_init_vars": "servers: [10.0.0.2]"})
    applied = run(sim_env, "apply", "--pool", "web", "--wait", "--timeout", "600")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    put_pool(sim_env, "bad", {"min": "3", "max": "1"})  # invalid: not counted, and said so

    shown = run(sim_env, "hosts", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["schema"] == HOSTS_SCHEMA
    [host] = doc["hosts"]
    assert host["name"] == "default" and host["registered"] is True
    assert host["reachable"] is True and host["error"] is None
    used = {"cpus": 4, "memory": 2 * G, "disk": 10 * G}
    assert host["used"] == used
    # Today's single host is not measured; once the fleet reads daemon_info, it is.
    if host["capacity"] is not None:
        cap = host["capacity"]
        assert host["free"] == {k: cap[k] - used[k] for k in used}
    assert host["members"] == 2
    assert host["pools"] == {"web": {"members": 2, "phases": {"ready": 2}}}
    assert list(doc["unaccounted"]) == ["bad"]

    text = run(sim_env, "hosts")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[1].split()[:2] == ["default", "yes"] and lines[1].split()[3] == "2"
    assert any(line.startswith("          memory  2G used") for line in lines)
    assert "          web: 2 members (2 ready)" in lines
    assert lines[-1].startswith("pool bad: not counted")


def test_hosts_exits_1_when_a_read_fails(sim_env: dict[str, str]) -> None:
    no_nomad = run({**sim_env, "NOMAD_ADDR": "http://127.0.0.1:1"}, "hosts")
    assert no_nomad.returncode == 1 and "cannot reach Nomad" in no_nomad.stderr
    no_daemon = run(sim_env, "hosts", "--multipass-address", "127.0.0.1:1", "-o", "json")
    assert no_daemon.returncode == 1 and no_daemon.stdout == ""
    assert "\nerror: " in "\n" + no_daemon.stderr and "multipassd" in no_daemon.stderr


def test_hosts_shows_each_simulated_host_its_members_and_one_whose_daemon_is_down() -> None:
    with running_sim("--hosts", "3", "--speed", "20") as env:
        doc = json.loads(run(env, "hosts", "-o", "json").stdout)
        assert [h["name"] for h in doc["hosts"]] == ["host1", "host2", "host3"]
        for h in doc["hosts"]:
            assert h["reachable"] is True and h["version"] and h["registered"] is True
            assert h["capacity"]["cpus"] > 0 and h["free"] == h["capacity"]  # nothing placed
            assert h["used"] == {"cpus": 0, "memory": 0, "disk": 0} and h["members"] == 0

        items = {"min": "3", "max": "3", "cpus": "2", "memory": "1G", "disk": "5G"}
        put_pool(env, "web", items)
        applied = run(env, "apply", "--wait", "--timeout", "600")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        spread = json.loads(run(env, "hosts", "-o", "json").stdout)
        for h in spread["hosts"]:  # spread: one member on each host
            assert h["pools"] == {"web": {"members": 1, "phases": {"ready": 1}}}
            assert h["used"] == {"cpus": 2, "memory": G, "disk": 5 * G}
            assert h["free"] == {k: h["capacity"][k] - h["used"][k] for k in h["used"]}
        status = json.loads(run(env, "status", "--pool", "web", "-o", "json").stdout)
        web = status["pools"]["web"]
        assert web["hosts"] == {f"host{i}": {"members": 1, "ready": 1} for i in (1, 2, 3)}
        fits = {c["type"]: c for c in web["conditions"]}["InsufficientCapacity"]
        assert fits["status"] is False and fits["reason"] == "Fits"
        table = run(env, "status").stdout.splitlines()
        assert f"{'':17}hosts: host1: 1/1 ready, host2: 1/1 ready, host3: 1/1 ready" in table

        down = run(env, "sim", "ctl", "host", "host2", "daemon-down")
        assert down.returncode == 0, down.stderr
        shown = run(env, "hosts", "-o", "json")
        assert shown.returncode == 0, shown.stderr  # one host down is not a failed read
        by_name = {h["name"]: h for h in json.loads(shown.stdout)["hosts"]}
        assert by_name["host2"]["reachable"] is False and by_name["host2"]["error"]
        assert by_name["host2"]["capacity"] is None and by_name["host2"]["free"] is None
        # Its member still counts, by what Nomad says of its node.
        assert by_name["host2"]["pools"] == {"web": {"members": 1, "phases": {"ready": 1}}}
        assert by_name["host1"]["reachable"] and by_name["host3"]["reachable"]
        text = run(env, "hosts").stdout.splitlines()
        host2 = next(i for i, line in enumerate(text) if line.startswith("host2"))
        assert text[host2].split()[:2] == ["host2", "no"]
        assert text[host2 + 1].startswith("          error: ")

        assert run(env, "sim", "ctl", "host", "host2", "daemon-up").returncode == 0
        back = json.loads(run(env, "hosts", "-o", "json").stdout)
        assert all(h["reachable"] for h in back["hosts"])
