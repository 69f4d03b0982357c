"""A simulator run is reproducible from its seed: nothing random comes from outside the RNG."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

from reconciler.clock import ManualClock
from reconciler.sim.multipass_state import MultipassState

_NODE_JSON = """
import json, random
from reconciler.clock import ManualClock
from reconciler.sim.nomad_server import node_json
from reconciler.sim.nomad_state import NomadState
state = NomadState(ManualClock(), random.Random(3))
node_id = state.register_node("web-bcdfg-0", node_class="web", node_pool="pool-a")
print(json.dumps(node_json(state.nodes[node_id])["ComputedClass"]))
"""


def _instance_ids(seed: int) -> list[str]:
    state = MultipassState(ManualClock(), random.Random(seed))
    ids = []
    for name in ("a-1", "a-2", "a-3"):
        state.begin_launch(name)
        ids.append(state.create(name, "24.04", 1, 2**30, 5 * 2**30, "").id)
    return ids


def test_instance_ids_follow_the_seed() -> None:
    first = _instance_ids(11)
    assert first == _instance_ids(11)
    assert len(set(first)) == 3 and all(len(i) == 32 for i in first)
    assert first != _instance_ids(12)


def _computed_class(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", _NODE_JSON], env=env, capture_output=True, text=True, check=True
    )
    value: str = json.loads(out.stdout)
    return value


def test_a_nodes_computed_class_does_not_depend_on_the_process() -> None:
    # Python salts str hashes per process; PYTHONHASHSEED picks the salt.
    assert _computed_class("1") == _computed_class("2")
