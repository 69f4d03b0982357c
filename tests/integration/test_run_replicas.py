"""Two `reconciler run` replicas against `reconciler sim --acl`, as processes, over the wire.

One leads, the other stands by (both healthy and ready); the leader stops, the
standby takes over. Nothing any of them prints, serves or writes contains the
Nomad token, the multipassd passphrase or the client key.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.cli_sim import CLI, ROOT, running_sim

PREFIX = "nomad/jobs/multipass-reconciler"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def acl_sim() -> Iterator[dict[str, str]]:
    with running_sim("--acl", "--boot-seconds", "2") as env:
        assert "NOMAD_TOKEN" in env
        yield env


class Replica:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [
                *CLI,
                "--log-level",
                "DEBUG",
                "run",
                "--resync",
                "1",
                "--leader-ttl",
                "10",
                "--metrics-addr",
                f"127.0.0.1:{self.port}",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2)
        except httpx.HTTPError:
            return None

    def leads(self) -> bool:
        r = self.get("/metrics")
        return r is not None and "multipass_reconciler_leader 1.0" in r.text


def wait_for(what: str, check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_one_replica_leads_the_other_takes_over_and_no_secret_leaks(
    acl_sim: dict[str, str], tmp_path: Path
) -> None:
    env = acl_sim
    headers = {"X-Nomad-Token": env["NOMAD_TOKEN"]}
    body = {"Items": {"min": "1", "max": "2", "cloud_init_vars": "servers: [10.0.0.2]"}}
    httpx.put(f"{env['NOMAD_ADDR']}/v1/var/{PREFIX}/pools/web", json=body, headers=headers)

    a, b = Replica(env, tmp_path / "a.log"), Replica(env, tmp_path / "b.log")
    try:
        leader = wait_for("a leader", lambda: next((r for r in (a, b) if r.leads()), None))
        standby = b if leader is a else a
        assert not standby.leads()
        for r in (a, b):  # both serve health; the standby observes too, so it is ready
            wait_for(
                "ready", lambda r=r: (x := r.get("/readyz")) is not None and x.status_code == 200
            )
            health = r.get("/healthz")
            assert health is not None and health.status_code == 200
        status_url = f"{env['NOMAD_ADDR']}/v1/var/{PREFIX}/status/web"
        status = wait_for(
            "status", lambda: (x := httpx.get(status_url, headers=headers)).status_code == 200 and x
        )
        metrics_text = leader.get("/metrics").text + standby.get("/metrics").text  # type: ignore[union-attr]

        # A one-off `apply` beside a running leader would race it: refused.
        racing = subprocess.run(
            [*CLI, "apply"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert racing.returncode == 1 and "a `reconciler run` leads" in racing.stderr

        leader.proc.send_signal(signal.SIGTERM)  # graceful: releases the lock
        assert leader.proc.wait(timeout=20) == 0
        wait_for("the standby to take over", standby.leads, timeout=15)
    finally:
        for r in (a, b):
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
                r.proc.wait(timeout=20)

    logs = a.log.read_text() + b.log.read_text()
    assert "action done" in logs  # the logs are there to be searched
    key = Path(env["MULTIPASS_CLIENT_KEY"]).read_text()
    secrets = [env["NOMAD_TOKEN"], env["MULTIPASS_PASSPHRASE"]]
    secrets += [line for line in key.splitlines() if line and "-----" not in line]
    for where, text in (
        ("logs", logs),
        ("metrics", metrics_text),
        ("status", json.dumps(status.json())),
    ):
        leaked = [s[:8] + "..." for s in secrets if s in text]
        assert not leaked, f"secrets in {where}: {leaked}"
