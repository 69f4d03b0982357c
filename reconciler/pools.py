"""Pool specs as Nomad Variables: ``<prefix>/pools/<pool>``, one per pool."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.errors import ConfigError
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import NotFound

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


@dataclass(frozen=True)
class PoolVariable:
    pool: str
    path: str
    items: Mapping[str, str]
    index: int  # ModifyIndex: the spec's generation


_UNREAD = PoolVariable("", "", {}, -1)


class PoolSource:
    """Reads pool variables and waits for them to change."""

    def __init__(self, nomad: NomadClient, prefix: str = DEFAULT_PREFIX) -> None:
        self.nomad = nomad
        self.prefix = prefix
        self._index = 0
        self._seen: dict[str, int] | None = None  # path -> ModifyIndex at the last look
        self._read: dict[str, PoolVariable] = {}  # path -> the variable as last read

    def path(self, pool: str) -> str:
        return pool_path(self.prefix, pool)

    async def load(self, only: str | None = None) -> list[PoolVariable]:
        """Every pool's variable (or just ``only``'s), sorted by pool name."""
        if only is not None:
            try:
                var = await self.nomad.get_var(self.path(only))
            except NotFound:
                raise ConfigError(
                    f"pool {only!r}: no variable at {self.path(only)}; create it with "
                    f"`nomad var put {self.path(only)} min=1 max=3`"
                ) from None
            return [PoolVariable(only, var.path, dict(var.items), var.modify_index)]
        listing = await self.nomad.list_vars(pools_prefix(self.prefix))
        self._index = max(self._index, listing.index)
        listed = {
            m.path: m.modify_index
            for m in listing.value
            if "/" not in m.path[len(pools_prefix(self.prefix)) :]
        }
        # The list carries each variable's ModifyIndex: one read is unchanged until it moves.
        changed = [p for p, index in listed.items() if self._read.get(p, _UNREAD).index != index]
        for v in await asyncio.gather(*(self.nomad.get_var(p) for p in changed)):
            pool = v.path[len(pools_prefix(self.prefix)) :]
            self._read[v.path] = PoolVariable(pool, v.path, dict(v.items), v.modify_index)
        self._read = {p: v for p, v in self._read.items() if p in listed}
        return [self._read[p] for p in sorted(listed)]

    async def wait_for_change(self) -> None:
        """Return once a pool variable was created, changed or deleted.

        Nomad's variables index is the whole table's: any write anywhere (our own
        status variables included) moves it, so a moved index alone is no change.
        What counts is the set of pool paths and their ModifyIndex.
        """
        while True:
            result = await self.nomad.list_vars(
                pools_prefix(self.prefix), index=self._index, wait=WATCH_WAIT
            )
            self._index = max(self._index, result.index)
            seen = {m.path: m.modify_index for m in result.value}
            if self._seen is None:
                self._seen = seen
                continue
            if seen != self._seen:
                self._seen = seen
                return
