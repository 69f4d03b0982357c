"""`reconciler secrets import`: finds, checks and prints the client certificate as variable JSON."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.client_certs import (
    candidate_dirs,
    find_client_certificate,
    load_pair,
    read_passphrase,
    variable_json,
)
from reconciler.clock import ManualClock
from reconciler.errors import ConfigError
from reconciler.nomad.client import NomadClient
from reconciler.nomad.settings import NomadSettings
from reconciler.settings import Settings
from reconciler.sim import certs
from reconciler.sim.world import SimConfig, Simulation

CLI = [sys.executable, "-m", "reconciler"]


@pytest.fixture
def pair(tmp_path: Path) -> certs.SimCertificates:
    return certs.generate(tmp_path / "pki")


def test_the_usual_locations_per_platform(tmp_path: Path) -> None:
    env = {"HOME": "/home/u"}
    assert candidate_dirs(env, "linux")[0] == Path(
        "/home/u/snap/multipass/current/data/multipass-client-certificate"
    )
    assert candidate_dirs({**env, "XDG_DATA_HOME": "/x"}, "linux")[2] == Path(
        "/x/multipass-client-certificate"
    )
    assert candidate_dirs(env, "darwin") == [
        Path("/home/u/Library/Application Support/multipass-client-certificate")
    ]
    home = tmp_path / "home"
    found = home / ".local/share/multipass-client-certificate"
    found.mkdir(parents=True)
    (found / "multipass_cert.pem").write_text("c")
    (found / "multipass_cert_key.pem").write_text("k")
    assert find_client_certificate({"HOME": str(home)}, "linux")[0] == found / "multipass_cert.pem"
    with pytest.raises(ConfigError, match="no Multipass client certificate found"):
        find_client_certificate({"HOME": str(tmp_path / "nobody")}, "linux")


def test_a_key_of_another_certificate_or_a_bad_file_is_refused(
    pair: certs.SimCertificates, tmp_path: Path
) -> None:
    other = certs.generate(tmp_path / "other")
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        load_pair(pair.client_cert, other.client_key)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(ConfigError, match=r"junk\.pem: not a PEM certificate"):
        load_pair(junk, pair.client_key)
    with pytest.raises(ConfigError, match=r"junk\.pem: not a PEM private key"):
        load_pair(pair.client_cert, junk)
    with pytest.raises(ConfigError, match="no such file"):
        load_pair(tmp_path / "missing.pem", pair.client_key)


def test_passphrase_from_stdin() -> None:
    assert read_passphrase(io.StringIO("s3cret phrase\n")) == "s3cret phrase"
    with pytest.raises(ConfigError, match="nothing was read"):
        read_passphrase(io.StringIO(""))


async def test_what_it_prints_is_what_the_reconciler_reads_back(
    pair: certs.SimCertificates,
) -> None:
    cert, key = load_pair(pair.client_cert, pair.client_key)
    body = json.loads(
        variable_json(cert, key, passphrase="pw-123456", server_cert_pem=cert, address="h:51001")
    )
    async with Simulation(SimConfig(), ManualClock()) as sim:
        nomad_settings = NomadSettings(address=sim.nomad.address)
        async with NomadClient(nomad_settings) as nomad:
            await nomad.put_var("nomad/jobs/multipass-reconciler", body["Items"])
            settings = Settings("nomad/jobs/multipass-reconciler", nomad_settings, env={})
            resolved = await settings.resolve_multipass(nomad)
    assert resolved.client_cert == cert.encode() and resolved.client_key == key.encode()
    assert resolved.passphrase == "pw-123456" and resolved.address == "h:51001"
    assert resolved.server_cert == cert.encode()


def test_the_command_prints_json_only_on_stdout(pair: certs.SimCertificates) -> None:
    out = subprocess.run(
        [
            *CLI,
            "secrets",
            "import",
            "--cert",
            str(pair.client_cert),
            "--key",
            str(pair.client_key),
            "--passphrase-stdin",
        ],
        input="pw-abcdef\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)["Items"]
    assert items["passphrase"] == "pw-abcdef" and items["client_key"].startswith("-----BEGIN")
    assert "nomad var put -in json nomad/jobs/multipass-reconciler -" in out.stderr
    bad = subprocess.run(
        [*CLI, "secrets", "import", "--cert", str(pair.client_cert)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert "give both --cert and --key" in bad.stderr
