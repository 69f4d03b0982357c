"""The real controller against the simulators, driven by Hypothesis through random histories.

Spec edits, injected faults, time passing and reconciler crashes (a new
controller with no memory, in-flight calls abandoned) come in any order. After
every step: no VM beyond max + surge of the specs in play (launches the daemon
is still preparing count: they become VMs even when their caller crashed), each
name in the pool once and of the form <pool>-<hash>-<ordinal>, nothing foreign
touched. At the end, with faults gone, the pool converges to its spec.

Launches spend a while "being prepared" (unlisted, their name refused to a second
launch), as multipassd's do, so a crash mid-launch leaves the daemon finishing a
launch the new controller cannot see.
"""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from reconciler import ownership
from reconciler.controller import Controller
from reconciler.execute import Executor, ExecutorLimits
from reconciler.observe import Observer
from reconciler.pools import DEFAULT_PREFIX, status_path
from reconciler.render import render_cloud_init
from reconciler.sim.faults import Fault
from reconciler.sim.world import SimConfig
from tests.integration.sim_harness import Harness, harness

SURGE = 1
PREPARE_SECONDS = 8.0  # mean; each launch draws 4..12 s (seeded)
FOREIGN_VM = "primary"
FOREIGN_NODE = "nomad-server-1"


class ControllerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.stack = contextlib.AsyncExitStack()
        self.h: Harness | None = None
        self.maxes: list[int] = []
        self.spec: tuple[int, int] = (0, 0)
        self.protected: set[str] = set()  # instance names whose node carries protect=true

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @initialize(seed=st.integers(0, 1000))
    def start(self, seed: int) -> None:
        config = SimConfig(
            seed=seed,
            boot_seconds=20,
            heartbeat_timeout=15,
            migrate_seconds=10,
            prepare_seconds=PREPARE_SECONDS,
        )
        self.h = self.run(self.stack.enter_async_context(harness(config)))
        mp = self.h.sim.multipass_state
        mp.begin_launch(FOREIGN_VM)
        mp.create(FOREIGN_VM, "24.04", 1, 2**30, 2**30, "")
        self.h.sim.nomad_state.register_node(FOREIGN_NODE)
        self.edit(1, 3, "24.04")

    @rule(
        lo=st.integers(0, 3),
        extra=st.integers(0, 2),
        image=st.sampled_from(["24.04", "22.04"]),
    )
    def edit(self, lo: int, extra: int, image: str) -> None:
        assert self.h is not None
        hi = max(1, lo + extra)
        self.spec = (lo, hi)
        self.maxes = [*self.maxes[-1:], hi]
        items = {"min": str(lo), "max": str(hi), "image": image, "max_surge": str(SURGE)}
        self.run(self.h.put_pool("web", items))

    @rule(
        where=st.sampled_from(["launch", "info", "delet", "GET /v1/nodes", "POST /v1/node/*"]),
        rate=st.sampled_from([0.3, 1.0]),
    )
    def fault(self, where: str, rate: float) -> None:
        assert self.h is not None
        if where == "launch":
            self.h.sim.multipassd.launch_failure = Fault(error_rate=rate)
        else:
            self.h.sim.faults.set(where, Fault(error_rate=rate))

    @rule()
    def heal(self) -> None:
        assert self.h is not None
        self.h.sim.faults.clear()
        self.h.sim.multipassd.launch_failure = Fault()
        self.unprotect()

    @rule(pick=st.integers(0, 10))
    def protect(self, pick: int) -> None:
        """An operator protects a serving node (`nomad node meta apply ...protect=true`)."""
        assert self.h is not None
        busy = {name for _, name in self.h.c.controller.executor.inflight}
        serving = [
            n
            for n in self.h.sim.nomad_state.nodes.values()
            if n.name in self.h.instances()
            and n.name not in busy
            and n.status == "ready"
            and n.eligibility == "eligible"
            and n.drain is None
        ]
        if serving:
            node = sorted(serving, key=lambda n: n.name)[pick % len(serving)]
            self.h.sim.nomad_state.apply_node_meta(node.id, {ownership.META_PROTECT: "true"})
            self.protected.add(node.name)

    @rule()
    def unprotect(self) -> None:
        assert self.h is not None
        for node in self.h.sim.nomad_state.nodes.values():
            if ownership.META_PROTECT in node.meta:
                self.h.sim.nomad_state.apply_node_meta(node.id, {ownership.META_PROTECT: None})
        self.protected.clear()

    @rule(seconds=st.sampled_from([1.0, 5.0, 20.0]))
    def time_passes(self, seconds: float) -> None:
        assert self.h is not None
        report = self.run(self.h.step(seconds))
        # The status variable says what this very pass saw (unless Nomad was unreachable).
        if report.error is None:
            [pp] = report.plans
            status = self.run(self.h.c.nomad.get_var(status_path(DEFAULT_PREFIX, "web"))).items
            assert status["spec_index"] == str(pp.variable.index)
            if pp.plan is not None:
                assert status["desired"] == str(pp.plan.desired)
                assert status["ready"] == str(pp.plan.counts["ready"])

    @precondition(lambda self: self.h is not None)
    @rule()
    def crash_and_restart(self) -> None:
        assert self.h is not None
        old = self.h.c.controller
        for task in list(old._tasks):
            task.cancel()  # a crash abandons in-flight calls wherever they are
        executor = Executor(
            self.h.c.multipass,
            self.h.c.nomad,
            render_cloud_init,
            ExecutorLimits(attempts=2, backoff_max=0.05),
        )
        # Nothing survives a crash: a fresh observer forgets down-since times and node reads.
        observer = Observer(self.h.c.nomad, self.h.c.multipass, old.clock)
        self.h.c.controller = Controller(
            old.pools, observer, executor, old.clock, status=old.status
        )

    def pool_names(self) -> list[str]:
        """Every instance of the pool and every launch of it the daemon is preparing."""
        assert self.h is not None
        preparing = sorted(n for n in self.h.sim.multipass_state.preparing if n.startswith("web-"))
        return self.h.instances() + preparing

    @invariant()
    def never_beyond_max_plus_surge(self) -> None:
        if self.h is None:
            return
        names = self.pool_names()
        assert len(names) <= max(self.maxes) + SURGE, (names, self.maxes)

    @invariant()
    def pool_names_are_unique_and_well_formed(self) -> None:
        if self.h is None:
            return
        names = self.pool_names()
        assert len(names) == len(set(names)), f"a name launched twice: {names}"
        for name in names:
            parsed = ownership.parse_instance_name(name)
            assert parsed is not None and parsed[0] == "web", f"{name}: not web-<hash>-<ordinal>"

    @invariant()
    def protected_members_keep_their_vm(self) -> None:
        if self.h is None:
            return
        gone = self.protected - set(self.h.instances())
        assert not gone, f"protected members deleted: {gone}"

    @invariant()
    def nothing_foreign_touched(self) -> None:
        if self.h is None:
            return
        assert FOREIGN_VM in self.h.sim.multipass_state.instances
        assert any(n.name == FOREIGN_NODE for n in self.h.sim.nomad_state.nodes.values())

    def teardown(self) -> None:
        try:
            if self.h is not None:
                self.heal()
                # Launches a crash orphaned finish in the daemon; then the pool settles.
                self.h.sim.advance(2 * PREPARE_SECONDS, step=PREPARE_SECONDS)
                self.run(asyncio.sleep(0.05))
                self.run(self.h.converge(max_passes=80))
                assert not self.h.sim.multipass_state.preparing
                lo, _ = self.spec
                assert len(self.h.ready_nodes()) == lo
                assert len(self.h.instances()) == lo
                # A restart mid-rollout still ends with one generation, the newest spec's.
                hashes = {n.rsplit("-", 2)[1] for n in self.h.instances()}
                status = self.run(self.h.c.nomad.get_var(status_path(DEFAULT_PREFIX, "web")))
                assert hashes <= {status.items["template_hash"]}
        finally:
            self.run(self.stack.aclose())
            self.loop.close()


ControllerMachine.TestCase.settings = settings(
    max_examples=6, stateful_step_count=12, deadline=None
)
TestControllerStateful = ControllerMachine.TestCase
