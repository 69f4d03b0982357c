"""The `reconciler` command as a user runs it: `sim` in one process, the others against it."""

from __future__ import annotations

import argparse
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import EXIT_CHANGES, EXIT_ERROR, build_parser, main
from reconciler.errors import ConfigError
from reconciler.multipass import errors
from reconciler.multipass.client import MultipassClient
from reconciler.multipass.settings import MultipassSettings
from reconciler.pools import DEFAULT_PREFIX
from reconciler.sim.multipass_state import GiB, HostCapacity
from reconciler.sim.runner import sim_config_from_args
from reconciler.sim.world import Simulation
from tests.integration.cli_sim import CLI, ROOT, running_sim


@pytest.fixture(scope="module")
def sim_env() -> Iterator[dict[str, str]]:
    with running_sim("--speed", "20", "--boot-seconds", "10") as env:
        yield env


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT, input=stdin
    )


def put_pool(env: dict[str, str], pool: str, items: dict[str, str]) -> None:
    import httpx

    body = {"Path": f"{DEFAULT_PREFIX}/pools/{pool}", "Items": items}
    r = httpx.put(f"{env['NOMAD_ADDR']}/v1/var/{DEFAULT_PREFIX}/pools/{pool}", json=body)
    r.raise_for_status()


def test_plan_apply_and_exit_codes(sim_env: dict[str, str]) -> None:
    empty = run(sim_env, "plan")
    assert empty.returncode == 0, empty.stderr
    put_pool(sim_env, "cli", {"min": "1", "max": "2", "cloud_init_vars": "servers: [10.0.0.2]"})
    changes = run(sim_env, "plan", "--pool", "cli")
    assert changes.returncode == 2, changes.stderr
    assert "+ launch" in changes.stdout and "Plan: 1 to launch" in changes.stdout
    as_json = json.loads(run(sim_env, "plan", "--pool", "cli", "-o", "json").stdout)
    [pool] = as_json["pools"]
    assert pool["schema"] == "multipass-reconciler/plan/v1"
    assert [a["kind"] for a in pool["actions"]] == ["launch"]
    no_status = run(sim_env, "status", "--pool", "cli")  # a dry run writes nothing
    assert no_status.returncode == 1 and "no status at" in no_status.stderr
    applied = run(sim_env, "apply", "--pool", "cli", "--wait", "--timeout", "600")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert run(sim_env, "plan", "--pool", "cli").returncode == 0  # nothing left to do
    status = json.loads(run(sim_env, "status", "--pool", "cli", "-o", "json").stdout)
    assert status["pools"]["cli"]["ready"] == status["pools"]["cli"]["desired"] == 1
    assert {c["type"] for c in status["pools"]["cli"]["conditions"]} >= {"Ready", "Degraded"}
    table = run(sim_env, "status").stdout
    assert table.startswith("POOL") and "Ready=True" in table


def test_an_invalid_spec_is_an_error_everywhere(sim_env: dict[str, str], tmp_path: Path) -> None:
    put_pool(sim_env, "bad", {"min": "3", "max": "1"})
    planned = run(sim_env, "plan", "--pool", "bad")
    assert planned.returncode == 1
    assert "max: 1 is below min (3)" in planned.stdout
    validated = run(sim_env, "spec", "validate", "--pool", "bad")
    assert validated.returncode == 1 and "max: 1 is below min (3)" in validated.stderr
    spec_file = tmp_path / "web.yaml"
    spec_file.write_text("min: 1\nmax: 3\ncloud_init_vars: {servers: [10.0.0.2]}\n")
    assert run(sim_env, "spec", "validate", str(spec_file)).returncode == 0
    spec_file.write_text("min: 1\nmxa: 3\n")
    bad_file = run(sim_env, "spec", "validate", str(spec_file))
    assert bad_file.returncode == 1 and "mxa: unknown item" in bad_file.stderr


def test_plan_and_spec_validate_warn_of_an_image_the_daemon_does_not_offer(
    sim_env: dict[str, str],
) -> None:
    put_pool(
        sim_env,
        "old",
        {"min": "1", "max": "1", "image": "18.04", "cloud_init_vars": "servers: [10.0.0.2]"},
    )
    validated = run(sim_env, "spec", "validate", "--pool", "old")
    assert validated.returncode == 0, validated.stderr  # well-formed: a warning, not an error
    assert "image: multipassd does not offer '18.04'" in validated.stderr
    assert "24.04" in validated.stderr  # what it does offer
    planned = run(sim_env, "plan", "--pool", "old")
    assert planned.returncode == 0, planned.stdout + planned.stderr  # nothing it can do
    assert "image '18.04': multipassd does not offer it" in planned.stdout
    assert "+ launch" not in planned.stdout


def test_render_prints_cloud_config(sim_env: dict[str, str]) -> None:
    put_pool(sim_env, "rnd", {"min": "0", "max": "1", "cloud_init_vars": "servers: [10.0.0.2]"})
    out = run(sim_env, "render", "--pool", "rnd", "--instance", "rnd-bcdfg-0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("#cloud-config\n") and 'name       = "rnd-bcdfg-0"' in out.stdout


def test_unreachable_nomad_is_a_clear_error(sim_env: dict[str, str]) -> None:
    env = {**sim_env, "NOMAD_ADDR": "http://127.0.0.1:1"}
    out = run(env, "plan")
    assert out.returncode == 1
    assert "cannot reach Nomad" in out.stderr


class _WebPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!DOCTYPE html><html><head><title>Router login</title></head><body></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_that_is_not_nomad_is_named_not_dumped(sim_env: dict[str, str]) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"http://127.0.0.1:{server.server_address[1]}"
        out = run({**sim_env, "NOMAD_ADDR": address}, "plan")
    finally:
        server.shutdown()
    assert out.returncode == 1
    assert f"{address} is not a Nomad agent" in out.stderr and "NOMAD_ADDR" in out.stderr
    assert "Router login" in out.stderr and "<" not in out.stderr


def test_bad_run_flags_are_named_and_nothing_starts(sim_env: dict[str, str]) -> None:
    ttl = run(sim_env, "run", "--leader-ttl", "5")
    assert ttl.returncode == 1 and "--leader-ttl: 5 is not within 10..86400" in ttl.stderr
    addr = run(sim_env, "run", "--no-leader-election", "--metrics-addr", "localhost")
    assert addr.returncode == 1 and "--metrics-addr: 'localhost' is not host:port" in addr.stderr
    grace = run(sim_env, "run", "--no-leader-election", "--shutdown-grace", "0")
    assert grace.returncode == 1 and "--shutdown-grace: 0 must be a positive" in grace.stderr


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["plan", "-o", "yaml"], "argument -o/--output: invalid choice: 'yaml'"),
        (["status", "--bogus"], "unrecognized arguments: --bogus"),
        (["apply", "--timeout", "soon"], "argument --timeout: invalid float value: 'soon'"),
        (["render"], "the following arguments are required: --pool"),
        (["spec", "validate"], "one of the arguments --pool file is required"),
        (["secrets"], "the following arguments are required: SUBCOMMAND"),
        (["sim", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_exit_1_not_plans_changes_code(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == EXIT_ERROR != EXIT_CHANGES
    err = capsys.readouterr().err
    assert err.startswith("usage: reconciler") and f"error: {complaint}" in err


def sim_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["sim", *flags])


def test_sim_flags_set_launch_failures_preparation_and_the_host() -> None:
    config = sim_config_from_args(
        sim_args(
            "--launch-failure",
            "0.25",
            "--prepare-seconds",
            "4",
            "--host-cpus",
            "4",
            "--host-memory",
            "8G",
            "--host-disk",
            "100G",
        )
    )
    assert (config.launch_failure, config.prepare_seconds) == (0.25, 4.0)
    assert config.capacity == HostCapacity(cpus=4, memory=8 * GiB, disk=100 * GiB)
    defaults = sim_config_from_args(sim_args())
    assert (defaults.launch_failure, defaults.prepare_seconds) == (0.0, 0.0)
    assert defaults.capacity == HostCapacity()


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--launch-failure", "1.5"], "--launch-failure: 1.5 is not a fraction between 0 and 1"),
        (["--never-join", "-0.1"], "--never-join: -0.1 is not a fraction between 0 and 1"),
        (["--prepare-seconds", "-1"], "--prepare-seconds: -1.0 must not be negative"),
        (["--host-memory", "lots"], "--host-memory: 'lots' is not a size like 512M or 2G"),
        (["--host-disk", "0"], "--host-disk: '0' must be more than zero"),
        (["--host-cpus", "0"], "--host-cpus: 0 must be at least 1"),
    ],
)
def test_bad_sim_flags_are_named(flags: list[str], complaint: str) -> None:
    with pytest.raises(ConfigError) as exc:
        sim_config_from_args(sim_args(*flags))
    assert str(exc.value) == complaint


async def test_sim_launch_failure_flag_fails_launches_over_the_wire() -> None:
    config = sim_config_from_args(sim_args("--launch-failure", "1", "--host-disk", "50G"))
    async with Simulation(config) as sim:
        env = sim.environment()
        settings = MultipassSettings.from_env(env)
        async with MultipassClient(settings, call_timeout=5) as client:
            info = await client.daemon_info()
            assert info.available_space == 50 * GiB
            with pytest.raises(errors.LaunchFailed, match="simulated failure"):
                await client.launch(
                    "web-bcdfg-0", image="24.04", cpus=1, memory="1G", disk="5G", user_data=""
                )
        assert sim.multipass_state.instances == {}
