"""`reconciler demo`, the README's first command, runs to the end and says what it did."""

from __future__ import annotations

import io
import re

from reconciler.demo import run_demo


async def test_the_demo_converges_through_every_step() -> None:
    out = io.StringIO()
    assert await run_demo(seed=3, out=out, speed=40.0) == 0
    text = out.getvalue()
    assert [int(n) for n in re.findall(r"step (\d): converged", text)] == [1, 2, 3, 4, 5, 6]
    # Each step says what it does, then the edit (or the host action) that does it.
    assert re.findall(r"step \d: (\w+ [^:(]+)", text)[:6] == [
        "create a pool of 3 members, one per host",
        "grow it to 6 members ",
        "shrink it to 3 members ",
        "roll it to image 22.04 ",
        "power host2 off",
        "power host2 on",
    ]
    assert "nomad var put nomad/jobs/multipass-reconciler/pools/web min=3 max=6 " in text
    assert "reconciler sim ctl host host2 power-off" in text
    assert "+ launch" in text and "- drain" in text
    # The first step spread the pool: one launch on each host.
    first = text.split("step 1: converged", 1)[0]
    assert all(f" on {h} " in first for h in ("host1", "host2", "host3"))
    # With host2 off, its member was replaced on another host.
    lost = text.split("step 5: converged", 1)[1].split("step 6:", 1)[0]
    assert "(powered off)" in lost
    assert len(re.findall(r"RUNNING\s+ready", lost)) == 3
    # Back on, the surplus went: three members, all of the last spec, all ready.
    final = text.rsplit("step 6: converged", 1)[1]
    assert len(re.findall(r"web-[a-z0-9]{5}-host\d-\d\s+RUNNING\s+ready", final)) == 3
    assert len(set(re.findall(r"web-([a-z0-9]{5})-host", final))) == 1
    assert "Ready=True" in final and "demo finished" in final
