"""Pool specs as Nomad Variables: ``<prefix>/pools/<pool>``, one per pool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.errors import ConfigError, ReconcilerError
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import NotFound
from reconciler.nomad.models import QueryResult, Variable, VariableMeta
from reconciler.tasks import started

DEFAULT_PREFIX = "nomad/jobs/multipass-reconciler"
WATCH_WAIT = 300.0  # seconds a blocking query is held: Nomad's default is 5m


def pools_prefix(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/pools/"


def pool_path(prefix: str, pool: str) -> str:
    return pools_prefix(prefix) + pool


def leader_path(prefix: str) -> str:
    """The variable whose lock elects the replica that acts."""
    return f"{prefix.rstrip('/')}/leader"


def status_path(prefix: str, pool: str) -> str:
    # Outside pools/, so writing status never wakes the watch on pool variables.
    return f"{prefix.rstrip('/')}/status/{pool}"


def status_prefix(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/status/"


# What a pool whose spec was deleted is planned as: scaled to zero (DESIGN.md, "Nomad
# Variables": the status variable is the finalizer). Every other item keeps its default.
DELETED_ITEMS: Mapping[str, str] = {"min": "0", "max": "0"}


@dataclass(frozen=True)
class PoolVariable:
    pool: str
    path: str
    items: Mapping[str, str]
    index: int  # ModifyIndex: the spec's generation
    # The spec variable is gone while the pool's status variable remains: the pool is
    # scaled to zero, then its status is removed. ``items`` are then DELETED_ITEMS.
    deleted: bool = False


def was_paused(status: Mapping[str, str]) -> bool:
    """Did the last status say the pool was paused? A paused pool, deleted, stays paused."""
    try:
        conditions = json.loads(status.get("conditions", "[]"))
    except json.JSONDecodeError:
        return False
    return any(
        isinstance(c, dict) and c.get("type") == "Progressing" and c.get("reason") == "Paused"
        for c in (conditions if isinstance(conditions, list) else [])
    )


_UNREAD = PoolVariable("", "", {}, -1)


class PrefixListing:
    """One list of every variable under ``<prefix>``, made once and shared by a pass.

    The pools, their status variables, the host variables and ``<prefix>`` itself
    all sit under the prefix, and a list carries each one's ModifyIndex: one list a
    pass tells every reader which of its variables moved. Nomad lists by string
    prefix, so a sibling such as ``<prefix>-old/...`` is listed too: each reader
    takes its part by full path (``under``).
    """

    def __init__(self, nomad: NomadClient, prefix: str) -> None:
        self.nomad = nomad
        self.root = prefix.rstrip("/")
        self._listing: asyncio.Future[QueryResult[list[VariableMeta]]] | None = None

    async def read(self, under: str = "") -> QueryResult[list[VariableMeta]]:
        """The variables whose path starts with ``under`` (all: ""), at the list's index.

        The first caller makes the request; the others await the same one.
        """
        if self._listing is None:
            self._listing = started(self.nomad.list_vars(self.root))
        # Shielded: one reader cancelled must not cancel the list under the others.
        everything = await asyncio.shield(self._listing)
        if not under:
            return everything
        part = [m for m in everything.value if m.path.startswith(under)]
        return QueryResult(part, everything.index)


class VariableWatch:
    """Waits, by blocking queries, until a variable under ``prefix`` is created, changed
    or deleted.

    Nomad's variables index is the whole table's: any write anywhere (our own status
    variables included) moves it, so a moved index alone is no change. What counts is
    the set of paths under the prefix and their ModifyIndex.
    """

    def __init__(self, nomad: NomadClient, prefix: str) -> None:
        self.nomad = nomad
        self.prefix = prefix
        self.index = 0
        self._seen: dict[str, int] | None = None  # path -> ModifyIndex at the last look
        # Paths the watch saw created, changed or deleted since the last take_moved().
        self._moved: set[str] = set()

    def saw(self, listing: QueryResult[list[VariableMeta]], *, start: bool = False) -> None:
        """A list of the prefix read elsewhere: its index is where blocking starts from.

        ``start``: the watch's first wake is a change from this list, even if the watch
        only begins later.
        """
        self.index = max(self.index, listing.index)
        if start and self._seen is None:
            self._seen = {m.path: m.modify_index for m in listing.value}

    async def wait_for_change(self) -> None:
        while True:
            result = await self.nomad.list_vars(self.prefix, index=self.index, wait=WATCH_WAIT)
            self.index = max(self.index, result.index)
            seen = {m.path: m.modify_index for m in result.value}
            if self._seen is None:
                self._seen = seen
                continue
            if seen != self._seen:
                self._moved |= {
                    p for p in seen.keys() | self._seen.keys() if seen.get(p) != self._seen.get(p)
                }
                self._seen = seen
                return

    def take_moved(self) -> set[str]:
        """The paths seen to move since the last call (a hint: a pass still lists them)."""
        moved, self._moved = self._moved, set()
        return moved


def _read_early(nomad: NomadClient, path: str) -> asyncio.Task[Variable | None]:
    """A variable read ahead of the list that decides whether it is needed; None: failed."""

    async def read() -> Variable | None:
        try:
            return await nomad.get_var(path)
        except ReconcilerError:  # gone, or unreadable: the list decides, and reads again
            return None

    return started(read())


class PoolSource:
    """Reads pool variables and waits for them to change."""

    def __init__(self, nomad: NomadClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.nomad = nomad
        self.prefix = prefix
        self._watch = VariableWatch(nomad, pools_prefix(prefix))
        self._read: dict[str, PoolVariable] = {}  # path -> the variable as last read
        # The status variables as the last load of every pool listed them (None after a
        # load of one pool): the pass's status reads check against it, no second list.
        self.statuses: QueryResult[list[VariableMeta]] | None = None
        # The ModifyIndex of the variable `<prefix>` in that list; None when the list did
        # not show it (absent, or not listable by this token) and after a load of one pool.
        self.own_index: int | None = None

    def path(self, pool: str) -> str:
        return pool_path(self.prefix, pool)

    async def load(
        self, only: str | None = None, listing: PrefixListing | None = None
    ) -> list[PoolVariable]:
        """Every pool's variable (or just ``only``'s), sorted by pool name.

        A pool whose spec is gone but whose status variable remains comes back as
        ``deleted``: it was acted on under this prefix and namespace, so its members
        are ours to remove. A pool with neither is not a pool here at all.

        ``listing``: the pass's list of ``<prefix>``, when other readers share it.
        """
        self.statuses = self.own_index = None
        if only is not None:
            try:
                var = await self.nomad.get_var(self.path(only))
            except NotFound:
                deleted = await self._deleted(only)
                if deleted is not None:
                    return [deleted]
                raise ConfigError(
                    f"pool {only!r}: no variable at {self.path(only)}; create it with "
                    f"`nomad var put {self.path(only)} min=1 max=3`"
                ) from None
            return [PoolVariable(only, var.path, dict(var.items), var.modify_index)]
        # One list of everything under the prefix: the pools, their status variables,
        # and the reconciler's own variable (whose ModifyIndex says when the cluster's
        # TLS material must be read again).
        listing = listing or PrefixListing(self.nomad, self.prefix)
        # The variables the watch saw move are read beside the list, not after it: an
        # edit is what a pass reacts to. Each read is kept only if the list agrees.
        early = {p: _read_early(self.nomad, p) for p in sorted(self._watch.take_moved())}
        try:
            return await self._load_all(listing, early)
        finally:
            for task in early.values():
                task.cancel()  # nothing once done

    async def _load_all(
        self, listing: PrefixListing, early: Mapping[str, asyncio.Task[Variable | None]]
    ) -> list[PoolVariable]:
        root = listing.root
        everything = await listing.read()
        # The watch starts from what this list saw: its first wake is a real change,
        # even when it starts after this load.
        self._watch.saw(await listing.read(pools_prefix(self.prefix)), start=True)
        self.statuses = await listing.read(status_prefix(self.prefix))
        # Not in the list is not "none": the shipped ACL policies let the reconciler read
        # `<prefix>` but not list it, and Nomad leaves out of a list what may not be
        # listed. Then its TLS material is read at every pass that launches, as before.
        self.own_index = next((m.modify_index for m in everything.value if m.path == root), None)
        listed = {
            m.path: m.modify_index
            for m in everything.value
            if m.path.startswith(pools_prefix(self.prefix))
            and "/" not in m.path[len(pools_prefix(self.prefix)) :]
        }
        # The list carries each variable's ModifyIndex: one read is unchanged until it moves.
        changed = [p for p, index in listed.items() if self._read.get(p, _UNREAD).index != index]

        async def read(path: str) -> Variable:
            ahead = await early[path] if path in early else None
            if ahead is not None and ahead.modify_index >= listed[path]:
                return ahead
            return await self.nomad.get_var(path)

        for v in await asyncio.gather(*(read(p) for p in changed)):
            pool = v.path[len(pools_prefix(self.prefix)) :]
            self._read[v.path] = PoolVariable(pool, v.path, dict(v.items), v.modify_index)
        self._read = {p: v for p, v in self._read.items() if p in listed}
        found = [self._read[p] for p in sorted(listed)]
        # A status without its spec: the pool was deleted and its finalizer is pending.
        named = {v.pool for v in found}
        orphans = sorted(
            pool
            for m in self.statuses.value
            if "/" not in (pool := m.path[len(status_prefix(self.prefix)) :]) and pool not in named
        )
        gone = await asyncio.gather(*(self._deleted(pool) for pool in orphans))
        found += [d for d in gone if d is not None]
        return sorted(found, key=lambda v: v.pool)

    async def _deleted(self, pool: str) -> PoolVariable | None:
        """The pool as its status finalizer leaves it once its spec is gone; None: no status."""
        try:
            status = await self.nomad.get_var(status_path(self.prefix, pool))
        except NotFound:
            return None
        items = dict(DELETED_ITEMS)
        if was_paused(status.items):
            items["paused"] = "true"
        spec_index = status.items.get("spec_index", "0")
        index = int(spec_index) if spec_index.isdigit() else 0
        return PoolVariable(pool, self.path(pool), items, index, deleted=True)

    async def wait_for_change(self) -> None:
        """Return once a pool variable was created, changed or deleted."""
        await self._watch.wait_for_change()
