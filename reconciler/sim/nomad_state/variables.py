"""Variables and their locks (after nomad/state/state_store_variables.go and nomad/locks.go).

A lock's TTL and lock-delay are timers on Nomad's leader (nomad/locks.go): they
run in real time, whatever the rest of a simulated cluster does, and a client
measures its lease against them with its own clock. So they run here on their
own clock, ``lock_clock``: the state's clock by default (a test moving time by
hand moves both), real time under ``reconciler sim --speed`` (sim/runner.py),
so that a lease means the same to the reconciler and to the simulator at any speed.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.clock import Clock
from reconciler.sim.nomad_state.base import SimConflict, SimError, StateBase

LOCK_TTL_MIN = 10.0
LOCK_TTL_MAX = 24 * 3600.0
DEFAULT_LOCK_TTL = 15.0
DEFAULT_LOCK_DELAY = 15.0
# Nomad lets a lock run for twice its TTL before it lapses (a grace period for clients).
LOCK_TTL_GRACE = 2.0

_VAR_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")


@dataclass
class SimLock:
    id: str
    ttl: float
    lock_delay: float
    expires_at: float  # on the lock clock's monotonic()
    lapsed: bool = False


@dataclass
class SimVariable:
    namespace: str
    path: str
    items: dict[str, str]
    create_index: int = 0
    modify_index: int = 0
    create_time: float = 0.0
    modify_time: float = 0.0
    lock: SimLock | None = None

    @property
    def is_zero(self) -> bool:
        return self.create_index == 0 and self.modify_index == 0


class VariableTables(StateBase):
    lock_clock: Clock
    _lock_timers: list[tuple[float, int, str, tuple[Any, ...]]]

    def _init_locks(self, lock_clock: Clock) -> None:
        self.lock_clock = lock_clock
        self._lock_timers = []

    def tick(self) -> None:
        """The state's events, then the lock timers that are due by the lock clock."""
        super().tick()
        if self._ticking:
            return
        now = self.lock_clock.monotonic()
        while self._lock_timers and self._lock_timers[0][0] <= now:
            when, _, kind, args = heapq.heappop(self._lock_timers)
            getattr(self, f"_on_{kind}")(when, *args)

    def _lock_timer(self, when: float, kind: str, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._lock_timers, (when, self._seq, kind, args))

    def _var_changed(self, var: SimVariable) -> int:
        return self._commit("variables", [(var.path, var.namespace, "")])

    @staticmethod
    def validate_path(path: str) -> None:
        """Nomad's variable path rules (structs.ValidatePath)."""
        if not path:
            raise SimError(400, "variable requires path")
        if not _VAR_PATH.match(path):
            raise SimError(400, f'invalid path "{path}"')
        parts = path.split("/")
        if parts[0] != "nomad":
            return
        if len(parts) == 1:
            raise SimError(400, '"nomad" is a reserved top-level directory path')
        if parts[1] in ("jobs", "sentinel") or (parts[1] == "job-templates" and len(parts) == 3):
            return
        raise SimError(
            400,
            'only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths '
            'under the top-level "nomad" directory',
        )

    def get_var(self, ns: str, path: str) -> SimVariable:
        self.tick()
        var = self.variables.get((ns, path))
        if var is None:
            raise SimError(404, "variable not found")
        return var

    def list_vars(self, ns: str, prefix: str = "") -> list[SimVariable]:
        """Variables under ``prefix`` in ``ns`` ("*": every namespace), by (namespace, path)."""
        self.tick()
        return [
            v
            for (vns, path), v in sorted(self.variables.items())
            if (ns == "*" or vns == ns) and path.startswith(prefix)
        ]

    def put_var(
        self,
        ns: str,
        path: str,
        items: Mapping[str, str],
        cas: int | None = None,
        lock_id: str | None = None,
    ) -> SimVariable:
        """Create or replace a variable's items (Nomad writes even when they are unchanged)."""
        self.tick()
        self.validate_path(path)
        if not items:
            raise SimError(400, "variable missing required Items object")
        if any(not isinstance(v, str) for v in items.values()):
            raise SimError(400, "variable items must be strings")
        existing = self.variables.get((ns, path))
        if cas is not None:
            if cas == 0 and existing is not None:
                raise SimConflict(existing)
            if cas != 0 and existing is None:
                raise SimConflict(SimVariable(ns, path, {}))
            if existing is not None and existing.modify_index != cas:
                raise SimConflict(existing)
        if existing is not None and existing.lock is not None and existing.lock.id != lock_id:
            raise SimConflict(SimVariable(ns, path, {}), "attempting to modify locked variable")
        now = self.now()
        var = existing or SimVariable(ns, path, {}, create_time=now)
        var.items = dict(items)
        var.modify_time = now
        self.variables[(ns, path)] = var
        idx = self._var_changed(var)
        if var.create_index == 0:
            var.create_index = idx
        var.modify_index = idx
        return var

    def delete_var(
        self, ns: str, path: str, cas: int | None = None, lock_id: str | None = None
    ) -> int:
        """Delete (a missing variable is fine without cas); returns the index answered.

        Deleting nothing still goes through raft (svDeleteTxn succeeds on it), so
        it answers a new index while the variables table stays as it was.
        """
        self.tick()
        existing = self.variables.get((ns, path))
        if cas is not None:
            if cas != 0 and existing is None:
                raise SimConflict(SimVariable(ns, path, {}))
            if existing is not None and existing.modify_index != cas:
                raise SimConflict(existing)
        if existing is None:
            self.index += 1
            return self.index
        if existing.lock is not None and existing.lock.id != lock_id:
            raise SimConflict(SimVariable(ns, path, {}), "attempting to modify locked variable")
        del self.variables[(ns, path)]
        return self._var_changed(existing)

    def lock_acquire(
        self,
        ns: str,
        path: str,
        ttl: float = DEFAULT_LOCK_TTL,
        lock_delay: float = DEFAULT_LOCK_DELAY,
        items: Mapping[str, str] | None = None,
    ) -> SimVariable:
        """Lock the variable (creating it if absent); its items become ``items``. 409 if locked."""
        self.tick()
        self.validate_path(path)
        if ttl < 0 or lock_delay < 0:
            raise SimError(400, "Lock delay and TTL must be positive")
        if not LOCK_TTL_MIN <= ttl <= LOCK_TTL_MAX:
            raise SimError(400, "TTL must be between 10 seconds and 24 hours")
        existing = self.variables.get((ns, path))
        if existing is not None and existing.lock is not None:
            raise SimConflict(SimVariable(ns, path, {}), "variable already holds a lock")
        now = self.now()
        var = existing or SimVariable(ns, path, {}, create_time=now)
        # VarLockAcquire writes the request's variable, data included: an acquire
        # without Items leaves the variable empty (nomad/state/state_store_variables.go).
        var.items = dict(items or {})
        expires_at = self.lock_clock.monotonic() + LOCK_TTL_GRACE * ttl
        var.lock = SimLock(self.new_id(), ttl, lock_delay, expires_at)
        var.modify_time = now
        self.variables[(ns, path)] = var
        idx = self._var_changed(var)
        if var.create_index == 0:
            var.create_index = idx
        var.modify_index = idx
        self._lock_timer(var.lock.expires_at, "lock_expire", ns, path, var.lock.id)
        return var

    def lock_renew(self, ns: str, path: str, lock_id: str) -> SimVariable:
        """Extend the holder's lease; a lapsed lock cannot be renewed. Not a write."""
        self.tick()
        var = self.variables.get((ns, path))
        if var is None:
            raise SimError(404, "variable doesn't exist")
        if var.lock is None:
            raise SimError(409, "variable doesn't hold a lock")
        if var.lock.id != lock_id or var.lock.lapsed:
            raise SimError(409, "attempting to modify locked variable")
        var.lock.expires_at = self.lock_clock.monotonic() + LOCK_TTL_GRACE * var.lock.ttl
        self._lock_timer(var.lock.expires_at, "lock_expire", ns, path, lock_id)
        return var

    def lock_release(self, ns: str, path: str, lock_id: str) -> SimVariable:
        """Remove the lock now (no lock-delay follows a release); items stay."""
        self.tick()
        if not lock_id:
            raise SimError(400, "missing lock information")
        var = self.variables.get((ns, path))
        # Nomad's state store answers these two with plain errors, hence 500.
        if var is None:
            raise SimError(500, "variable doesn't exist")
        if var.lock is None:
            raise SimError(500, "variable doesn't hold a lock")
        if var.lock.id != lock_id:
            placeholder = SimVariable(ns, path, {})
            placeholder.lock = SimLock("", 0, 0, 0)
            raise SimConflict(placeholder)
        var.lock = None
        var.modify_time = self.now()
        var.modify_index = self._var_changed(var)
        return var

    def _on_lock_expire(self, when: float, ns: str, path: str, lock_id: str) -> None:
        var = self.variables.get((ns, path))
        lock = var.lock if var else None
        if lock is None or lock.id != lock_id or lock.lapsed or lock.expires_at > when:
            return  # released, renewed or replaced since
        lock.lapsed = True
        self._lock_timer(when + lock.lock_delay, "lock_free", ns, path, lock_id)

    def _on_lock_free(self, when: float, ns: str, path: str, lock_id: str) -> None:
        # Nomad's delay timer (nomad/locks.go, invalidateVariableLock) releases
        # whatever lock the variable holds when it fires: its release carries no
        # lock ID. So if the lapsed holder released during the delay and someone
        # acquired since, that newer lock is stripped as well, as here.
        var = self.variables.get((ns, path))
        if var is None or var.lock is None:
            return
        var.lock = None
        var.modify_time = self.now()
        var.modify_index = self._var_changed(var)
