"""`reconciler demo`, the README's first command, runs to the end and says what it did."""

from __future__ import annotations

import io
import re

from reconciler.demo import run_demo


async def test_the_demo_converges_through_every_step() -> None:
    out = io.StringIO()
    assert await run_demo(seed=3, out=out, speed=40.0) == 0
    text = out.getvalue()
    assert [int(n) for n in re.findall(r"step (\d): converged", text)] == [1, 2, 3, 4]
    # Each step says what it does, then the edit that does it.
    assert re.findall(r"step \d: (\w+ [^:(]+)", text)[:4] == [
        "create a pool of 2 members ",
        "grow it to 4 members ",
        "shrink it to 2 members ",
        "roll it to image 22.04 ",
    ]
    assert "nomad var put nomad/jobs/multipass-reconciler/pools/web min=2 max=5 " in text
    assert "+ launch" in text and "- drain" in text
    # The last step replaced both members: the final table lists only the new image's hash.
    final = text.rsplit("step 4: converged", 1)[1]
    hashes = set(re.findall(r"web-([a-z0-9]{5})-\d", final))
    assert len(hashes) == 1
    assert "Ready=True" in final and "demo finished" in final
