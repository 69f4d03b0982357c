"""What a booted VM's user-data makes of it, as far as Nomad can see.

The simulated VM "runs" cloud-init the way the real one would matter to the
reconciler: it becomes a Nomad client only if the user-data writes a Nomad
configuration with the client enabled and starts the nomad service. The node's
name, datacenter, class, pool and meta come from that configuration, so a
template edit really changes what registers, and a broken template really
yields a VM that never joins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import hcl2
import yaml

NOMAD_CONFIG_DIR = "/etc/nomad.d/"


@dataclass(frozen=True)
class NodeRegistration:
    name: str
    datacenter: str = "dc1"
    node_class: str = ""
    node_pool: str = "default"
    meta: dict[str, str] = field(default_factory=dict)


class CloudInitRejected(Exception):
    """The user-data would not make a Nomad client; the message says why."""


def interpret(user_data: str, hostname: str) -> NodeRegistration:
    """The Nomad node this user-data produces on a VM called ``hostname``."""
    # cloud-init only treats user-data as cloud-config when this is its first line.
    if user_data.split("\n", 1)[0].rstrip() != "#cloud-config":
        raise CloudInitRejected("user-data is not #cloud-config (first line)")
    try:
        doc = yaml.safe_load(user_data)
    except yaml.YAMLError as exc:
        raise CloudInitRejected(f"user-data is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise CloudInitRejected("user-data is not a YAML mapping")

    config: dict[str, Any] = {}
    for entry in doc.get("write_files") or []:
        if not isinstance(entry, dict):
            continue
        path = str(entry.get("path", ""))
        if path.startswith(NOMAD_CONFIG_DIR):
            _merge(config, _parse_config(path, str(entry.get("content", ""))))
    if not config:
        raise CloudInitRejected(f"no Nomad configuration written under {NOMAD_CONFIG_DIR}")

    client = _block(config.get("client"))
    if client.get("enabled") not in (True, "true"):
        raise CloudInitRejected("Nomad configuration does not enable the client")
    if not _starts_nomad(doc):
        raise CloudInitRejected("user-data never starts the nomad service")

    meta = {str(k): str(v) for k, v in _block(client.get("meta")).items()}
    hostname = str(doc.get("hostname") or hostname)
    return NodeRegistration(
        name=str(config.get("name") or hostname),
        datacenter=str(config.get("datacenter") or "dc1"),
        node_class=str(client.get("node_class") or ""),
        node_pool=str(client.get("node_pool") or "default"),
        meta=meta,
    )


def _parse_config(path: str, content: str) -> dict[str, Any]:
    try:
        if path.endswith(".json"):
            parsed = json.loads(content)
        elif path.endswith(".hcl"):
            parsed = hcl2.loads(content)
        else:
            return {}  # Nomad only loads .hcl and .json from its config dir
    except Exception as exc:  # both parsers raise their own assorted types
        raise CloudInitRejected(f"{path}: Nomad would not parse it: {exc}") from None
    if not isinstance(parsed, dict):
        raise CloudInitRejected(f"{path}: not a configuration object")
    return _unquote(parsed)


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of quoted keys and strings in some versions; strip them."""
    if isinstance(value, dict):
        return {_strip(k): _unquote(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str):
        return _strip(value)
    return value


def _strip(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _block(value: Any) -> dict[str, Any]:
    """HCL blocks come back from python-hcl2 as a list of one mapping."""
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict):
                merged.update(item)
        return merged
    return value if isinstance(value, dict) else {}


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if key in into and isinstance(value, (list, dict)):
            into[key] = _block(into[key]) | _block(value)
        else:
            into[key] = value


def _starts_nomad(doc: dict[str, Any]) -> bool:
    for cmd in doc.get("runcmd") or []:
        text = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
        words = text.split()
        names_nomad = any(w.startswith("nomad") for w in words)
        starts = "start" in words or "restart" in words or ("enable" in words and "--now" in words)
        if "systemctl" in words and names_nomad and starts:
            return True
    return False
