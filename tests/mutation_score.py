"""The mutation score of the last `make mutation` run, per module (docs/testing.md).

Reads mutmut's results (``mutmut results --all true``: one ``name: status`` line
per mutant) and the mutants written down as equivalent in
``tests/mutation_equivalent.txt`` (``<mutant name>  # why it cannot be told apart``).

Killed: mutmut's "killed", "timeout" (the mutant made a test hang: caught) and
"caught by type check". Every other status counts against the score, "no tests"
included; an equivalent mutant is left out of the total instead.

Run from the repository root: ``.venv/bin/python tests/mutation_score.py``; exit 1
when the score is below ``--goal`` (90 by default) or mutants were not checked.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = frozenset({"killed", "timeout", "caught by type check"})
EQUIVALENT = Path(__file__).with_name("mutation_equivalent.txt")


def results(mutmut: str) -> dict[str, str]:
    out = subprocess.run(
        [mutmut, "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().partition(": ")
        if sep and "__mutmut_" in name:
            found[name] = status.strip()
    return found


def equivalent(path: Path = EQUIVALENT) -> dict[str, str]:
    """Mutant name -> why it is equivalent, from the list kept in the repository."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, why = line.partition("#")
        out[name.strip()] = why.strip()
    return out


def module_of(mutant: str) -> str:
    """``reconciler.plan.x__phase__mutmut_3`` -> ``reconciler.plan``."""
    function = mutant.split("__mutmut_")[0]
    return function.rsplit(".", 1)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutmut", default=str(Path(sys.executable).with_name("mutmut")))
    parser.add_argument("--goal", type=float, default=90.0)
    parser.add_argument("--survivors", action="store_true", help="list what was not killed")
    args = parser.parse_args()

    found = results(args.mutmut)
    if not found:
        print("no mutmut results: run `make mutation` first", file=sys.stderr)
        return 1
    same = equivalent()
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[tuple[str, str]] = []
    for name, status in sorted(found.items()):
        counts = by_module[module_of(name)]
        if name in same and status not in KILLED:
            counts["equivalent"] += 1
        elif status in KILLED:
            counts["killed"] += 1
        else:
            counts["not killed"] += 1
            counts[status] += 1
            survivors.append((name, status))

    print(f"{'module':32} {'mutants':>7} {'killed':>6} {'equiv.':>6} {'left':>5} {'score':>7}")
    total: Counter[str] = Counter()
    for module, counts in sorted(by_module.items()):
        n = sum(counts[k] for k in ("killed", "equivalent", "not killed"))
        total.update({k: counts[k] for k in ("killed", "equivalent", "not killed")})
        print(_row(module, n, counts))
    n = sum(total.values())
    print(_row("all", n, total))
    unchecked = sum(1 for s in found.values() if s == "not checked")
    if unchecked:
        print(f"{unchecked} mutants not checked yet: the run did not finish")
    if args.survivors:
        for name, status in survivors:
            print(f"  {status:12} {name}")
    score = _score(n, total)
    return 0 if score >= args.goal and not unchecked else 1


def _score(n: int, counts: Counter[str]) -> float:
    judged = n - counts["equivalent"]
    return 100.0 * counts["killed"] / judged if judged else 100.0


def _row(module: str, n: int, counts: Counter[str]) -> str:
    return (
        f"{module:32} {n:7} {counts['killed']:6} {counts['equivalent']:6} "
        f"{counts['not killed']:5} {_score(n, counts):6.1f}%"
    )


if __name__ == "__main__":
    sys.exit(main())
