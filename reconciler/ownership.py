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
# Instance names are DNS labels: <pool>-<hash>-<ordinal>.
POOL_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,40}[a-z0-9]$|^[a-z]$")
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes: no vowels, no lookalikes
# One regex for the whole name: the planner parses every name in the world.
_INSTANCE_NAME_RE = re.compile(
    rf"^([a-z](?:[a-z0-9-]{{0,40}}[a-z0-9])?)-([{_HASH_ALPHABET}]{{{HASH_LENGTH}}})-(0|[1-9][0-9]*)$"
)


def instance_name(pool: str, template_hash: str, ordinal: int) -> str:
    return f"{pool}-{template_hash}-{ordinal}"


@functools.lru_cache(maxsize=1 << 16)  # the same names come back every pass
def parse_instance_name(name: str) -> tuple[str, str, int] | None:
    """Split ``<pool>-<hash>-<ordinal>``; None when the name is not of that shape."""
    match = _INSTANCE_NAME_RE.match(name)
    if match is None:
        return None
    return match.group(1), match.group(2), int(match.group(3))


def encode_hash(digest: bytes) -> str:
    """Turn a digest into a short hash in the safe alphabet."""
    value = int.from_bytes(digest[:8], "big")
    out = []
    for _ in range(HASH_LENGTH):
        value, rem = divmod(value, len(_HASH_ALPHABET))
        out.append(_HASH_ALPHABET[rem])
    return "".join(out)
