"""The status variable each pass writes, read back from the Nomad simulator."""

from __future__ import annotations

import json

from reconciler.pools import DEFAULT_PREFIX, status_path
from tests.integration.sim_harness import Harness, harness


async def status_of(h: Harness, pool: str = "web") -> tuple[dict[str, str], int]:
    var = await h.c.nomad.get_var(status_path(DEFAULT_PREFIX, pool))
    return dict(var.items), var.modify_index


def conditions(items: dict[str, str]) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in json.loads(items["conditions"])}


async def test_status_reflects_the_last_pass_and_is_not_rewritten_when_steady() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "2", "max": "4"})
        first = await h.step()
        items, _ = await status_of(h)
        assert items["desired"] == "2" and items["ready"] == "0"
        assert items["spec_index"] == str(first.plans[0].variable.index)
        assert items["last_plan"].startswith("Plan: 2 to launch")
        assert conditions(items)["Progressing"]["status"] is True
        assert conditions(items)["Ready"]["status"] is False

        await h.converge()
        await h.step()
        items, index = await status_of(h)
        assert items["ready"] == "2" and items["pending"] == "0"
        ready = conditions(items)["Ready"]
        assert ready["status"] is True and ready["reason"] == "Converged"
        assert conditions(items)["Progressing"]["status"] is False

        # A steady pool: passes go on, the status variable's index stays put.
        for _ in range(3):
            await h.step()
        again, same_index = await status_of(h)
        assert same_index == index and again == items


async def test_an_invalid_spec_shows_in_status() -> None:
    async with harness() as h:
        await h.put_pool("web", {"min": "1", "max": "1"})
        await h.converge()
        await h.put_pool("web", {"min": "3", "max": "1"})
        await h.step()
        items, _ = await status_of(h)
        spec_valid = conditions(items)["SpecValid"]
        assert spec_valid["status"] is False
        assert "max: 1 is below min (3)" in str(spec_valid["message"])
        assert "ready" not in items  # no plan, so no counts that could mislead
