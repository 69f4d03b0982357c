"""Each benchmark still runs, at its smallest size (docs/benchmarks.md).

The figures are measured by hand, not here (no timed assertions); this only keeps
the scripts working as the code under them changes: a signature change once broke
benchmarks/reaction.py and nothing noticed until it was next run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize(
    ("script", "args", "header"),
    [
        ("planner.py", ["10"], "plan median"),
        ("planner.py", ["--pass", "--members", "100"], "pass plan median"),
        ("reaction.py", ["--pools", "1", "--samples", "1", "--idle-seconds", "1"], "launch50"),
        ("fleet_launch.py", ["--members", "2", "--hosts", "2"], "launch times"),
    ],
)
def test_the_benchmark_runs_and_prints_its_table(script: str, args: list[str], header: str) -> None:
    lines = run(script, *args).splitlines()
    table = [line for line in lines if header in line]
    assert table, lines
    # A header and at least one row of figures under it.
    assert len(lines) > lines.index(table[0]) + 1
