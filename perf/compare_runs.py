"""Do two ``prunegrad-lite reproduce`` folders hold the same results? (e.g. ``--executor local``
against ``--executor ray``, docs/distributed.md)

Compares every results file the two runs wrote (``*.json``, ``*.csv``, ``*.md``, ``*.png``) and
prints, for each, "byte-identical", "equal without wall times" (the JSON with every
``wall_time_s`` dropped) or "DIFFERENT". ``run.json`` and ``summary.md`` hold the calls' timings
and are reported, not judged. Exit code 0 when every results file is equal.

Usage::

    python perf/compare_runs.py runs/quick_local runs/quick_ray
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TIMINGS = {"run.json", "summary.md"}  # the calls' timings: reported, not judged
VOLATILE = {"wall_time_s"}  # wall times inside the results files


def without_wall_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_wall_times(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [without_wall_times(v) for v in value]
    return value


def compare(a: Path, b: Path) -> bool:
    names = sorted(
        {p.name for p in a.iterdir() if p.is_file()} | {p.name for p in b.iterdir() if p.is_file()}
    )
    ok = True
    for name in names:
        pa, pb = a / name, b / name
        if not (pa.is_file() and pb.is_file()):
            verdict, equal = f"only in {a if pa.is_file() else b}", False
        elif pa.read_bytes() == pb.read_bytes():
            verdict, equal = "byte-identical", True
        elif name.endswith(".json") and without_wall_times(
            json.loads(pa.read_text())
        ) == without_wall_times(json.loads(pb.read_text())):
            verdict, equal = "equal without wall times", True
        else:
            verdict, equal = "DIFFERENT", False
        if name in TIMINGS:
            verdict += " (timings: not judged)"
            equal = True
        ok &= equal
        print(f"{name:45s} {verdict}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args()
    ok = compare(args.first, args.second)
    print("the results are equal" if ok else "the results DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
