"""The committed gRPC stubs match multipass.proto, and the proto matches the daemon's API."""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.multipass import gen_stubs
from reconciler.multipass._pb import multipass_pb2 as pb

# Version guards differ between grpcio-tools releases; the API they describe must not.
_VOLATILE = re.compile(
    r"^(# Protobuf Python Version:.*|GRPC_GENERATED_VERSION = .*|\s+\d+,|\s+'',)$", re.MULTILINE
)


def _stable(text: str) -> str:
    return _VOLATILE.sub("", text)


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    fresh = gen_stubs.generate(tmp_path)
    for path in fresh:
        committed = gen_stubs.OUT / path.name
        assert _stable(committed.read_text()) == _stable(path.read_text()), (
            f"{committed} is stale: run `make stubs`"
        )


def test_wire_contract_with_multipassd() -> None:
    """Field numbers and method paths the real daemon uses (canonical/multipass multipass.proto)."""
    service = pb.DESCRIPTOR.services_by_name["Rpc"]
    assert pb.DESCRIPTOR.package == "multipass"
    assert {m.name for m in service.methods} == {
        "launch",
        "purge",
        "find",
        "info",
        "list",
        "delet",
        "version",
        "authenticate",
        "daemon_info",
    }
    assert all(m.client_streaming and m.server_streaming for m in service.methods)
    fields = {
        "LaunchRequest": {
            "instance_name": 1,
            "image": 2,
            "num_cores": 4,
            "mem_size": 5,
            "disk_space": 6,
            "cloud_init_user_data": 8,
            "remote_name": 9,
            "timeout": 14,
        },
        "LaunchReply": {
            "vm_instance_name": 1,
            "launch_progress": 2,
            "create_message": 3,
            "log_line": 6,
            "reply_message": 8,
        },
        "InfoRequest": {"instance_snapshot_pairs": 1, "no_runtime_information": 4},
        "InstanceDetails": {
            "image_release": 1,
            "current_release": 2,
            "memory_usage": 5,
            "disk_usage": 6,
            "ipv4": 7,
            "creation_timestamp": 12,
        },
        "DetailedInfoItem": {
            "name": 1,
            "instance_status": 2,
            "memory_total": 3,
            "disk_total": 4,
            "cpu_count": 5,
            "instance_info": 7,
        },
        "ListRequest": {"request_ipv4": 3},
        "ListVMInstance": {"name": 1, "instance_status": 2, "ipv4": 3, "current_release": 5},
        "FindRequest": {"search_string": 1, "remote_name": 2, "allow_unsupported": 4},
        "FindReply": {"images_info": 1},
        "FindReply.ImageInfo": {"release": 2, "aliases": 4, "remote_name": 6},
        "DeleteRequest": {"instance_snapshot_pairs": 1, "purge": 2},
        "DaemonInfoReply": {"available_space": 2, "cpus": 3, "memory": 4},
        "AuthenticateRequest": {"passphrase": 1},
    }
    for message, numbers in fields.items():
        outer, _, inner = message.partition(".")
        desc = pb.DESCRIPTOR.message_types_by_name[outer]
        if inner:
            desc = desc.nested_types_by_name[inner]
        assert {f.name: f.number for f in desc.fields if f.name in numbers} == numbers, message
    status = pb.DESCRIPTOR.message_types_by_name["InstanceStatus"].enum_types_by_name["Status"]
    assert [v.name for v in status.values] == [
        "UNKNOWN",
        "RUNNING",
        "STARTING",
        "RESTARTING",
        "STOPPED",
        "DELETED",
        "DELAYED_SHUTDOWN",
        "SUSPENDING",
        "SUSPENDED",
        "UNAVAILABLE",
    ]
