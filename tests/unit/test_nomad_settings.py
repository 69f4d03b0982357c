"""NomadSettings: the nomad CLI's environment, flags winning, and a token that never shows."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from reconciler.cli import build_parser
from reconciler.errors import ConfigError
from reconciler.nomad.client import NomadClient
from reconciler.nomad.settings import DEFAULT_ADDRESS, NomadSettings
from reconciler.settings import settings_from_args

TOKEN = "6e3a1b8c-0000-4e1f-9d7e-secret-token"


def test_defaults_without_environment() -> None:
    s = NomadSettings.from_env({})
    assert s.address == DEFAULT_ADDRESS
    assert s.token is None and s.namespace is None and s.region is None
    assert s.skip_verify is False


def test_environment_is_read_and_flags_win() -> None:
    env = {
        "NOMAD_ADDR": "http://nomad.lab:4646",
        "NOMAD_TOKEN": TOKEN,
        "NOMAD_NAMESPACE": "infra",
        "NOMAD_REGION": "eu",
        "NOMAD_SKIP_VERIFY": "true",
        "NOMAD_TLS_SERVER_NAME": "server.global.nomad",
    }
    s = NomadSettings.from_env(env)
    assert (s.address, s.token, s.namespace, s.region) == (
        "http://nomad.lab:4646",
        TOKEN,
        "infra",
        "eu",
    )
    assert s.skip_verify and s.tls_server_name == "server.global.nomad"
    flagged = NomadSettings.from_env(
        env, address="http://other:4646", namespace="apps", skip_verify=False
    )
    assert flagged.address == "http://other:4646" and flagged.namespace == "apps"
    assert flagged.region == "eu" and flagged.skip_verify is False


def test_a_bare_host_port_means_http() -> None:
    assert NomadSettings.from_env({"NOMAD_ADDR": "10.0.0.5:4646"}).address == "http://10.0.0.5:4646"


def test_the_token_is_never_in_repr_or_str() -> None:
    s = NomadSettings(token=TOKEN)
    assert TOKEN not in repr(s) and TOKEN not in str(s) and TOKEN not in f"{s}"
    assert "token=<set>" in repr(s)
    assert TOKEN not in repr(NomadClient(s))


def test_missing_certificate_files_name_the_file_and_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(ConfigError) as exc:
        NomadSettings.from_env({"NOMAD_CACERT": str(missing)})
    assert "NOMAD_CACERT" in str(exc.value) and str(missing) in str(exc.value)
    cert = tmp_path / "cli.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="NOMAD_CLIENT_KEY"):
        NomadSettings.from_env(
            {"NOMAD_CLIENT_CERT": str(cert), "NOMAD_CLIENT_KEY": str(tmp_path / "key.pem")}
        )
    with pytest.raises(ConfigError, match="together"):
        NomadSettings.from_env({"NOMAD_CLIENT_CERT": str(cert)})


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_skip_verify_must_be_a_boolean(value: str) -> None:
    with pytest.raises(ConfigError, match="NOMAD_SKIP_VERIFY"):
        NomadSettings.from_env({"NOMAD_SKIP_VERIFY": value})


def test_address_must_be_http_or_a_unix_socket() -> None:
    with pytest.raises(ConfigError, match="NOMAD_ADDR"):
        NomadSettings(address="ftp://nomad:4646")
    with pytest.raises(ConfigError, match="NOMAD_ADDR"):
        NomadSettings(address="nomad:4646")
    task_api = NomadSettings(address="unix:///secrets/api.sock")
    assert task_api.unix_socket == "/secrets/api.sock"


def test_https_builds_a_verifying_context_unless_told_not_to() -> None:
    strict = NomadSettings(address="https://nomad:4646").ssl_context()
    assert isinstance(strict, ssl.SSLContext) and strict.verify_mode == ssl.CERT_REQUIRED
    loose = NomadSettings(address="https://nomad:4646", skip_verify=True).ssl_context()
    assert isinstance(loose, ssl.SSLContext) and loose.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize("command", ["plan", "apply", "status", "run", "render", "spec"])
def test_tls_flags_override_the_environment(command: str) -> None:
    env = {"NOMAD_SKIP_VERIFY": "true", "NOMAD_TLS_SERVER_NAME": "server.global.nomad"}
    argv = {
        "render": ["render", "--pool", "web"],
        "spec": ["spec", "validate", "--pool", "web"],
    }.get(command, [command])
    from_env = settings_from_args(build_parser().parse_args(argv), env).nomad
    assert from_env.skip_verify and from_env.tls_server_name == "server.global.nomad"
    flags = ["--no-skip-verify", "--tls-server-name", "nomad.internal"]
    flagged = settings_from_args(build_parser().parse_args([*argv, *flags]), env).nomad
    assert flagged.skip_verify is False and flagged.tls_server_name == "nomad.internal"
    forced = settings_from_args(build_parser().parse_args([*argv, "--skip-verify"]), {}).nomad
    assert forced.skip_verify is True and forced.tls_server_name is None
