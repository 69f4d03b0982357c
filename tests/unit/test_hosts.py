"""Host variables: every item's problems named, defaults, and the capacity placement may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.hosts import (
    DEFAULT_CPU_OVERCOMMIT,
    DEFAULT_MAX_PARALLEL_LAUNCHES,
    DEFAULT_RESERVE_DISK,
    DEFAULT_RESERVE_MEMORY,
    HOST_ITEM_NAMES,
    HostSpec,
    host_path,
    hosts_prefix,
    parse_host_spec,
    usable_capacity,
)
from reconciler.sim.certs import generate

GiB = 1024**3


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    certs = generate(Path(tmp_path_factory.mktemp("certs")), server_name="127.0.0.1")
    return {
        "root": certs.root_cert.read_text(),
        "cert": certs.client_cert.read_text(),
        "key": certs.client_key.read_text(),
    }


def problems_of(items: dict[str, str], name: str = "host1") -> tuple[str, ...]:
    parsed = parse_host_spec(name, items)
    assert isinstance(parsed, tuple), f"expected problems, got {parsed}"
    return parsed


def one_problem(item: str, items: dict[str, str]) -> str:
    found = [p for p in problems_of(items) if p.startswith(f"{item}:")]
    assert len(found) == 1, problems_of(items)
    return found[0]


def test_paths_sit_beside_the_pools() -> None:
    assert hosts_prefix("nomad/jobs/x/") == "nomad/jobs/x/hosts/"
    assert host_path("nomad/jobs/x", "host2") == "nomad/jobs/x/hosts/host2"


def test_the_least_a_host_needs_and_every_default(pem: dict[str, str]) -> None:
    spec = parse_host_spec("host1", {"address": "10.0.0.5:50051", "server_cert": pem["root"]}, 7)
    assert isinstance(spec, HostSpec)
    assert (spec.name, spec.address, spec.index) == ("host1", "10.0.0.5:50051", 7)
    assert spec.server_cert is not None and b"BEGIN CERTIFICATE" in spec.server_cert
    assert spec.server_name is None  # from the address, by the client
    assert (spec.client_cert, spec.client_key, spec.passphrase) == (None, None, None)  # shared
    assert spec.insecure_skip_verify is False
    assert (spec.cpus, spec.memory, spec.disk) == (None, None, None)  # daemon_info's
    assert spec.reserve_memory == DEFAULT_RESERVE_MEMORY == 1 * GiB
    assert spec.reserve_disk == DEFAULT_RESERVE_DISK == 10 * GiB
    assert spec.cpu_overcommit == DEFAULT_CPU_OVERCOMMIT == 4.0
    assert spec.max_parallel_launches == DEFAULT_MAX_PARALLEL_LAUNCHES == 2
    assert (spec.cordoned, spec.evacuate) == (False, False)


def test_every_item_given(pem: dict[str, str]) -> None:
    spec = parse_host_spec(
        "host2",
        {
            "address": "unix:/var/snap/multipass/common/multipass_socket",
            "server_cert": pem["root"],
            "server_name": "box2.lan",
            "client_cert": pem["cert"],
            "client_key": pem["key"],
            "passphrase": "s3cret",
            "insecure_skip_verify": "false",
            "cpus": "8",
            "memory": "32G",
            "disk": "500G",
            "reserve_memory": "2G",
            "reserve_disk": "0",
            "cpu_overcommit": "1.5",
            "max_parallel_launches": "4",
            "cordoned": "true",
            "evacuate": "1",
        },
    )
    assert isinstance(spec, HostSpec)
    assert spec.server_name == "box2.lan" and spec.passphrase == "s3cret"
    assert spec.client_cert is not None and spec.client_key is not None
    assert (spec.cpus, spec.memory, spec.disk) == (8, 32 * GiB, 500 * GiB)
    assert (spec.reserve_memory, spec.reserve_disk) == (2 * GiB, 0)
    assert (spec.cpu_overcommit, spec.max_parallel_launches) == (1.5, 4)
    assert spec.cordoned and spec.evacuate
    assert "s3cret" not in repr(spec) and "PRIVATE" not in repr(spec)


def test_insecure_skip_verify_needs_no_server_cert() -> None:
    spec = parse_host_spec("host1", {"address": "h:1", "insecure_skip_verify": "true"})
    assert isinstance(spec, HostSpec) and spec.server_cert is None and spec.insecure_skip_verify


def test_an_empty_variable_names_what_is_required() -> None:
    found = problems_of({})
    assert any(p.startswith("address: required") and "host:port" in p for p in found)
    assert any(
        p.startswith("server_cert: required unless insecure_skip_verify=true") for p in found
    )
    assert len(found) == 2


@pytest.mark.parametrize(
    ("item", "value", "says"),
    [
        ("address", "nohostport", "is not host:port (port 1..65535) or unix:/path"),
        ("address", "h:0", "port 1..65535"),
        ("address", "h:99999", "port 1..65535"),
        ("address", "h:abc", "is not host:port"),
        ("address", "unix:relative/sock", "is not unix:/absolute/path"),
        ("server_cert", "not a pem", "is not a PEM certificate"),
        (
            "server_cert",
            "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----",
            "not a readable certificate",
        ),
        ("server_name", "has space", "without spaces"),
        ("passphrase", "", "leave the item out"),
        ("insecure_skip_verify", "maybe", "is not a boolean; use true or false"),
        ("cpus", "0", "is not within 1..4096"),
        ("cpus", "two", "is not a whole number"),
        ("cpus", "--2", "'--2' is not a whole number; give one within 1..4096"),
        ("memory", "lots", "is not a size like 512M or 2G"),
        ("memory", "0", "must be at least 1"),
        ("disk", "-1G", "is not a size"),
        ("reserve_memory", "1X", "is not a size"),
        ("reserve_disk", "ten", "is not a size"),
        ("cpu_overcommit", "0.5", "is not within 1..64"),
        ("cpu_overcommit", "nan", "is not within 1..64"),
        ("cpu_overcommit", "x", "is not a number"),
        ("max_parallel_launches", "0", "is not within 1..64"),
        ("max_parallel_launches", "1.5", "is not a whole number"),
        ("cordoned", "yes!", "is not a boolean"),
        ("evacuate", "", "is not a boolean"),
    ],
)
def test_each_item_s_problem_names_it_and_what_is_allowed(
    pem: dict[str, str], item: str, value: str, says: str
) -> None:
    items = {"address": "10.0.0.5:50051", "server_cert": pem["root"], item: value}
    assert says in one_problem(item, items)


def test_a_client_cert_without_its_key_and_the_other_way_round(pem: dict[str, str]) -> None:
    base = {"address": "h:1", "server_cert": pem["root"]}
    assert "required with client_cert" in one_problem(
        "client_key", {**base, "client_cert": pem["cert"]}
    )
    assert "required with client_key" in one_problem(
        "client_cert", {**base, "client_key": pem["key"]}
    )
    assert "is not a PEM private key" in one_problem(
        "client_key", {**base, "client_cert": pem["cert"], "client_key": pem["cert"]}
    )


def test_unknown_items_name_the_allowed_ones(pem: dict[str, str]) -> None:
    problem = one_problem("memroy", {"address": "h:1", "server_cert": pem["root"], "memroy": "8G"})
    assert "unknown item" in problem
    assert all(name in problem for name in HOST_ITEM_NAMES)


def test_every_problem_is_reported_at_once_with_the_host_name_s() -> None:
    found = problems_of({"address": "x", "cpus": "0", "cordoned": "?", "colour": "red"}, "Host-1")
    assert any(p.startswith("host name 'Host-1' is not allowed") for p in found)
    for item in ("address", "server_cert", "cpus", "cordoned", "colour"):
        assert any(p.startswith(f"{item}:") for p in found), (item, found)


def test_a_host_name_shaped_like_a_template_hash_is_refused(pem: dict[str, str]) -> None:
    found = problems_of({"address": "h:1", "server_cert": pem["root"]}, "bcdfg")
    assert len(found) == 1 and "read as a template hash" in found[0]


def test_a_bad_host_name_is_refused_word_for_word() -> None:
    # Logged and shown in the host's status, to the person who must rename the variable.
    items = {"address": "h:1", "insecure_skip_verify": "true"}
    assert problems_of(items, "Host-1") == (
        "host name 'Host-1' is not allowed: a lowercase letter, then up to 7 lowercase "
        "letters or digits (no dash: the name becomes part of instance names); "
        "rename the variable <prefix>/hosts/Host-1",
    )
    assert problems_of(items, "bcdfg") == (
        "host name 'bcdfg' is not allowed: 5 characters from 'bcdfghjklmnpqrstvwxz2456789' "
        "read as a template hash inside instance names; rename the variable <prefix>/hosts/bcdfg",
    )


def test_items_that_are_not_strings_are_named() -> None:
    found = parse_host_spec("host1", {"address": "h:1", "insecure_skip_verify": True})  # type: ignore[dict-item]
    assert isinstance(found, tuple)
    assert any("insecure_skip_verify: True is not a string" in p for p in found)


# ------------------------------------------------------------ capacity


def test_capacity_is_the_daemon_s_less_the_reserves_cpus_overcommitted() -> None:
    spec = HostSpec("host1", "h:1")
    assert usable_capacity(spec, 8, 32 * GiB, 500 * GiB) == (32, 31 * GiB, 490 * GiB)


def test_caps_bound_the_daemon_s_figures_before_the_reserves() -> None:
    spec = HostSpec(
        "host1",
        "h:1",
        cpus=4,
        memory=16 * GiB,
        disk=100 * GiB,
        reserve_memory=2 * GiB,
        reserve_disk=20 * GiB,
        cpu_overcommit=1.5,
    )
    assert usable_capacity(spec, 8, 32 * GiB, 500 * GiB) == (6, 14 * GiB, 80 * GiB)
    # A cap above what the host has changes nothing: the smaller figure counts.
    assert usable_capacity(spec, 2, 8 * GiB, 50 * GiB) == (3, 6 * GiB, 30 * GiB)


def test_overcommitted_cpus_round_down() -> None:
    assert usable_capacity(HostSpec("h", "h:1", cpu_overcommit=1.5), 3, 0, 0)[0] == 4


def test_a_reserve_above_the_host_leaves_nothing_never_less() -> None:
    spec = HostSpec("host1", "h:1", reserve_memory=64 * GiB, reserve_disk=2048 * GiB)
    assert usable_capacity(spec, 0, 32 * GiB, 500 * GiB) == (0, 0, 0)
