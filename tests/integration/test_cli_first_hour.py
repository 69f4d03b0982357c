"""The first hour as a user lives it: `reconciler sim` in one process, the CLI against it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.pools import DEFAULT_PREFIX
from tests.integration.cli_sim import CLI, ROOT, running_sim
from tests.integration.test_cli import put_pool, run


@pytest.fixture(scope="module")
def sim_env() -> Iterator[dict[str, str]]:
    with running_sim("--speed", "20", "--boot-seconds", "10") as env:
        yield env


def test_no_pools_says_where_it_looked(sim_env: dict[str, str]) -> None:
    out = run(sim_env, "plan", "--prefix", "nomad/jobs/elsewhere")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "No pools found in namespace default under nomad/jobs/elsewhere/pools/ "
        "(NOMAD_NAMESPACE or --namespace, --prefix).\n"
    )


def test_no_status_says_where_it_looked(sim_env: dict[str, str]) -> None:
    out = run(sim_env, "status", "--prefix", "nomad/jobs/elsewhere")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "No pool status in namespace default under nomad/jobs/elsewhere/status/ "
        "(NOMAD_NAMESPACE or --namespace, --prefix): no pool reconciled here, "
        "or every one deleted.\n"
    )


def test_the_hint_for_a_missing_pool_is_a_spec_that_validates(
    sim_env: dict[str, str], tmp_path: Path
) -> None:
    out = run(sim_env, "plan", "--pool", "nope")
    assert out.returncode == 1
    hint = re.search(r"`nomad var put \S+ (.*?)`", out.stderr)
    assert hint is not None, out.stderr
    spec = tmp_path / "nope.yaml"
    spec.write_text("".join(f"{k}: '{v}'\n" for k, v in (i.split("=") for i in hint[1].split())))
    validated = run(sim_env, "spec", "validate", str(spec))
    assert validated.returncode == 0, validated.stderr


def test_a_min_max_pool_applied_with_wait_says_what_it_did_then_deleting_it_removes_it(
    sim_env: dict[str, str],
) -> None:
    put_pool(sim_env, "tour", {"min": "2", "max": "4"})  # no servers: taken from Nomad
    applied = run(sim_env, "apply", "--pool", "tour", "--wait", "--timeout", "600")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    lines = applied.stdout.splitlines()
    assert lines[0].startswith("Pool tour  (")
    assert "Plan: 2 to launch, 0 to drain, 0 to delete, 0 nodes to purge." in lines
    launched = [
        line for line in lines if re.fullmatch(r"launch tour-\w{5}-[01]: ok \(\d+\.\ds\)", line)
    ]
    assert len(launched) == 2, applied.stdout
    assert lines[-1] == "Apply complete: 2 launched, 0 drained, 0 deleted, 0 nodes purged."
    assert run(sim_env, "plan", "--pool", "tour").stdout.endswith(
        "No changes. The pool matches its spec.\n\n"
    )

    r = httpx.delete(f"{sim_env['NOMAD_ADDR']}/v1/var/{DEFAULT_PREFIX}/pools/tour")
    r.raise_for_status()
    planned = run(sim_env, "plan", "--pool", "tour")
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "pool tour: spec deleted; 2 members to remove. Plan: 0 to launch, 2 to drain" in (
        planned.stdout
    )
    removed = run(sim_env, "apply", "--pool", "tour", "--wait", "--timeout", "600")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert removed.stdout.splitlines()[-1].startswith(
        "Apply complete: 0 launched, 2 drained, 2 deleted"
    )
    # Progress describes the pool before the action lines that follow it: once the
    # deletes are done, no line says the pool still waits on its drains.
    after_deletes = removed.stdout.split("delete tour-", 1)[1].splitlines()[2:]
    assert not [x for x in after_deletes if x.startswith("... ") and "drain" in x], removed.stdout
    gone = run(sim_env, "plan", "--pool", "tour")
    assert gone.returncode == 1 and "no variable at" in gone.stderr  # its status went last


def test_plan_into_a_closed_pipe_ends_without_a_traceback(sim_env: dict[str, str]) -> None:
    put_pool(sim_env, "piped", {"min": "1", "max": "1"})
    proc = subprocess.Popen(
        [*CLI, "plan", "--pool", "piped"],
        env=sim_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `| head -0` would: the reader is gone before plan writes
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_bad_values_are_refused_before_anything_happens(sim_env: dict[str, str]) -> None:
    timeout = run(sim_env, "apply", "--wait", "--timeout", "-5")
    assert timeout.returncode == 1
    assert "--timeout: -5 must be a positive number of seconds" in timeout.stderr
    put_pool(sim_env, "rnd2", {"min": "0", "max": "1"})
    bad = run(sim_env, "render", "--pool", "rnd2", "--instance", "Not A Name")
    assert bad.returncode == 1
    assert "--instance: 'Not A Name' is not an instance name of pool rnd2" in bad.stderr
    other = run(sim_env, "render", "--pool", "rnd2", "--instance", "web-bcdfg-0")
    assert other.returncode == 1 and "is not an instance name of pool rnd2" in other.stderr


def test_status_json_has_numbers_and_condition_objects(sim_env: dict[str, str]) -> None:
    put_pool(sim_env, "bad", {"min": "3", "max": "1"})
    assert run(sim_env, "apply", "--pool", "bad").returncode == 1
    status = json.loads(run(sim_env, "status", "--pool", "bad", "-o", "json").stdout)
    degraded = {c["type"]: c for c in status["pools"]["bad"]["conditions"]}["Degraded"]
    assert degraded["status"] is True and degraded["reason"] == "InvalidSpec"
    assert isinstance(status["pools"]["bad"]["spec_index"], int)


def test_an_unreachable_multipassd_is_said_plainly_and_grpc_logs_nothing(
    sim_env: dict[str, str],
) -> None:
    refused = run({**sim_env, "MULTIPASS_SERVER_ADDRESS": "127.0.0.1:1"}, "plan")
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: authenticate: cannot reach multipassd at 127.0.0.1:1: Connection refused\n"
    )
    # Not TLS at all (Nomad's HTTP port): gRPC's C core would log the failed handshake itself.
    nomad_port = sim_env["NOMAD_ADDR"].rsplit(":", 1)[1]
    not_tls = run({**sim_env, "MULTIPASS_SERVER_ADDRESS": f"127.0.0.1:{nomad_port}"}, "plan")
    assert not_tls.returncode == 1
    assert "ssl_transport_security" not in not_tls.stderr
    assert not_tls.stderr.startswith("error: authenticate: TLS with multipassd failed")
    default = {k: v for k, v in sim_env.items() if k != "MULTIPASS_SERVER_ADDRESS"}
    unset = run(default, "plan")
    assert "(the default; set MULTIPASS_SERVER_ADDRESS" in unset.stderr


def test_run_logs_each_action_at_its_default_level(sim_env: dict[str, str]) -> None:
    put_pool(sim_env, "logged", {"min": "1", "max": "1"})
    proc = subprocess.Popen(
        [*CLI, "run", "--no-leader-election", "--resync", "1"],
        env=sim_env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    seen = [""]
    # Not a timing assertion: a guard, so a `run` that never logs the action ends the read.
    guard = threading.Timer(90, proc.kill)
    guard.start()
    try:
        for line in proc.stderr:  # JSON lines: stderr is not a terminal
            seen.append(line)
            entry = json.loads(line)
            if entry.get("pool") == "logged" and entry["message"] == "action done":
                break
    finally:
        guard.cancel()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert seen[-1], "run logged nothing"
    entry = json.loads(seen[-1])
    assert entry["level"] == "info" and entry["action"] == "launch", seen
    assert entry["instance"].startswith("logged-") and entry["outcome"] == "ok"


def test_pool_put_validates_before_writing_and_get_and_delete_work(
    sim_env: dict[str, str], tmp_path: Path
) -> None:
    bad = run(sim_env, "pool", "put", "typo", "min=1", "mxa=3")
    assert bad.returncode == 1 and "mxa: unknown item" in bad.stderr
    assert "no variable at" in run(sim_env, "pool", "get", "typo").stderr  # nothing written
    put = run(sim_env, "pool", "put", "byhand", "min=0", "max=2")
    assert put.returncode == 0, put.stderr
    got = run(sim_env, "pool", "get", "byhand")
    assert json.loads(got.stdout)["Items"] == {"min": "0", "max": "2"}
    exported = tmp_path / "byhand.json"
    exported.write_text(got.stdout)
    assert run(sim_env, "spec", "validate", str(exported)).returncode == 0
    deleted = run(sim_env, "pool", "delete", "byhand")
    assert deleted.returncode == 0 and "spec deleted" in deleted.stdout
    assert run(sim_env, "pool", "get", "byhand").returncode == 1


def test_run_says_it_started_and_where_it_looks_and_that_it_stopped(
    sim_env: dict[str, str],
) -> None:
    # With every pool converged, `run` has no action to log: without these lines a
    # newcomer watching it cannot tell a working loop from a stuck one.
    proc = subprocess.Popen(
        [*CLI, "run", "--no-leader-election", "--metrics-addr", "127.0.0.1:0"],
        env=sim_env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    guard = threading.Timer(90, proc.kill)  # a guard, not a timing assertion
    guard.start()
    try:
        first = json.loads(proc.stderr.readline())
    finally:
        guard.cancel()
        proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert first["level"] == "info", first
    assert first["message"].startswith(
        f"run: reconciling the pools in namespace default under {DEFAULT_PREFIX}/pools/; "
        "full resync every 30s; leader election off; /metrics on 127.0.0.1:0"
    ), first
    last = json.loads(rest.splitlines()[-1])
    assert last["message"] == "run: stopped", rest


def test_plan_holds_the_launches_apply_would_hold_and_says_why(sim_env: dict[str, str]) -> None:
    put_pool(sim_env, "held", {"min": "1", "max": "1"})
    settings = f"{sim_env['NOMAD_ADDR']}/v1/var/{DEFAULT_PREFIX}"
    # Half the TLS items: a VM built now could not join the cluster, so nothing launches.
    httpx.put(settings, json={"Items": {"nomad_ca_cert": "x"}}).raise_for_status()
    try:
        planned = run(sim_env, "plan", "--pool", "held")
        applied = run(sim_env, "apply", "--pool", "held")
        status = run(sim_env, "status", "--pool", "held")
    finally:
        httpx.delete(settings).raise_for_status()
    assert applied.returncode == 0 and "launches held" in applied.stdout, applied.stdout
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "note: launches held: cannot read how to join the cluster" in planned.stdout
    assert "nomad_ca_cert set without nomad_client_cert" in planned.stdout
    assert "+ launch" not in planned.stdout and "1 to launch" not in planned.stdout
    # The one condition to alert on says the pool is not being reconciled.
    assert "Degraded=True" in status.stdout and "launches held" in status.stdout, status.stdout


def test_apply_wait_names_each_failure_once_and_counts_them_when_it_gives_up() -> None:
    with running_sim("--speed", "20", "--launch-failure", "1.0") as env:
        put_pool(env, "fails", {"min": "1", "max": "1"})
        applied = run(env, "apply", "--wait", "--timeout", "3")
        planned = run(env, "plan", "--pool", "fails")
    assert applied.returncode == 1, applied.stdout + applied.stderr
    # plan shows the launch again, and beside it why the last one did not happen.
    assert planned.returncode == 2 and "+ launch" in planned.stdout, planned.stdout
    assert "note: the last pass failed: " in planned.stdout, planned.stdout
    lines = applied.stdout.splitlines()
    failures = [x for x in lines if x.startswith("launch fails-")]
    assert failures, applied.stdout
    for line in failures:
        assert re.fullmatch(
            r"launch fails-\w{5}-0: FAILED after \d+\.\ds: failed to prepare .*", line
        ), line
    assert lines[-1] == (
        "Apply incomplete: 0 launched, 0 drained, 0 deleted, 0 nodes purged. "
        f"{len(failures)} action{'s' if len(failures) > 1 else ''} failed."
    ), applied.stdout
    assert "error: not converged before --timeout" in applied.stderr
