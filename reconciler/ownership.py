"""Names and marks that let the reconciler prove what is its own.

From the observed world alone (after a restart, with no memory) the reconciler
must tell which instances belong to which pool, which spec each was built from,
and which drains it started. These constants are that contract: the cloud-init
template writes the node meta, the executor writes the drain meta, the planner
reads both. Changing any of them orphans every running pool.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

# Nomad client meta written by the rendered cloud-init on every instance.
META_POOL = "multipass-reconciler.pool"
META_TEMPLATE_HASH = "multipass-reconciler.template-hash"
# Set by a person on a node (nomad node meta apply) to forbid scale-in/replacement.
META_PROTECT = "multipass-reconciler.protect"

# Drain meta written with every drain the reconciler starts.
DRAIN_META_OWNER = "multipass-reconciler.owner"
DRAIN_META_OWNER_VALUE = "multipass-reconciler"
DRAIN_META_POOL = "multipass-reconciler.pool"
DRAIN_META_REASON = "multipass-reconciler.reason"

HASH_LENGTH = 5
# Instance names are DNS labels (at most 63 characters): <pool>-<hash>-<ordinal> on the
# host "default", <pool>-<hash>-<host>-<ordinal> on any other.
POOL_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}[a-z0-9]$|^[a-z]$")
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes: no vowels, no lookalikes
# No dash and at most 8 characters: the name stays one parse and within 63 characters.
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_HASH_SHAPE_RE = re.compile(rf"^[{_HASH_ALPHABET}]{{{HASH_LENGTH}}}$")
# The daemon a deployment had before hosts were named: its instances keep today's names.
DEFAULT_HOST = "default"
# One regex for the whole name: the planner parses every name in the world. The host
# part cannot be mistaken for the hash: host names shaped like a hash are refused.
_INSTANCE_NAME_RE = re.compile(
    rf"^([a-z](?:[a-z0-9-]{{0,40}}[a-z0-9])?)-([{_HASH_ALPHABET}]{{{HASH_LENGTH}}})"
    r"(?:-([a-z][a-z0-9]{0,7}))?-(0|[1-9][0-9]*)$"
)


def host_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a host; None when it can."""
    if not HOST_NAME_RE.match(name):
        return (
            f"host name {name!r} is not allowed: a lowercase letter, then up to 7 lowercase "
            "letters or digits (no dash: the name becomes part of instance names)"
        )
    if _HASH_SHAPE_RE.match(name):
        return (
            f"host name {name!r} is not allowed: 5 characters from {_HASH_ALPHABET!r} read "
            "as a template hash inside instance names"
        )
    return None


def instance_name(pool: str, template_hash: str, ordinal: int, host: str = DEFAULT_HOST) -> str:
    if host == DEFAULT_HOST:
        return f"{pool}-{template_hash}-{ordinal}"
    return f"{pool}-{template_hash}-{host}-{ordinal}"


class InstanceName(NamedTuple):
    """The parts of one of our instance names."""

    pool: str
    template_hash: str
    host: str
    ordinal: int


@functools.lru_cache(maxsize=1 << 16)  # the same names come back every pass
def parse_name(name: str) -> InstanceName | None:
    """Split ``<pool>-<hash>[-<host>]-<ordinal>``; None when the name is not of that shape."""
    match = _INSTANCE_NAME_RE.match(name)
    if match is None:
        return None
    pool, template_hash, host, ordinal = match.groups()
    if host is not None and _HASH_SHAPE_RE.match(host):
        return None  # no host is named so: the hash is the part before the ordinal
    return InstanceName(pool, template_hash, host or DEFAULT_HOST, int(ordinal))


def parse_instance_name(name: str) -> tuple[str, str, int] | None:
    """``(pool, template hash, ordinal)`` of one of our names; None for any other."""
    parsed = parse_name(name)
    return None if parsed is None else (parsed.pool, parsed.template_hash, parsed.ordinal)


def host_of_name(name: str) -> str | None:
    """The host an instance of this name is launched on; None when the name is not ours."""
    parsed = parse_name(name)
    return None if parsed is None else parsed.host


def encode_hash(digest: bytes) -> str:
    """Turn a digest into a short hash in the safe alphabet."""
    value = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(HASH_LENGTH):
        value, rem = divmod(value, len(_HASH_ALPHABET))
        out.append(_HASH_ALPHABET[rem])
    return "".join(out)
