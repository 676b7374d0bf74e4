"""How long each notebook takes to run top to bottom, in normal and in smoke mode.

Each notebook runs in a fresh ``python3`` kernel (nbclient, kernel start included) with
``notebooks/`` as working directory, once per mode, one at a time; the executed copies stay in
memory. Prints a Markdown table (the one in ``notebooks/README.md``) with the machine's load
average before and after each run, and writes it as JSON.

Usage::

    python perf/notebook_times.py --out perf/out/notebook_times.json      # ~10 min on 2 cores
    python perf/notebook_times.py --modes smoke                           # ~3 min
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def run(path: Path, smoke: bool) -> float:
    """Seconds to execute ``path`` top to bottom in a fresh kernel (raises on a cell error)."""
    if smoke:
        os.environ["PRUNEGRAD_LITE_SMOKE"] = "1"
    else:
        os.environ.pop("PRUNEGRAD_LITE_SMOKE", None)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    t0 = time.perf_counter()
    client.execute()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["normal", "smoke"])
    parser.add_argument("--only", nargs="+", default=None, help="notebook numbers, e.g. 00 03")
    parser.add_argument("--out", type=Path, default=ROOT / "perf" / "out" / "notebook_times.json")
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    rows = []
    for path in NOTEBOOKS:
        if args.only and path.name[:2] not in args.only:
            continue
        row = {"notebook": path.name}
        for mode in args.modes:
            before = os.getloadavg()[0]
            row[mode] = round(run(path, mode == "smoke"), 1)
            row[f"{mode}_load"] = [round(before, 2), round(os.getloadavg()[0], 2)]
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count()}, indent=1) + "\n")
    head = " | ".join(f"{m} (s)" for m in args.modes)
    print(f"\n| notebook | {head} |\n|---|" + "---|" * len(args.modes))
    for r in rows:
        print(f"| {r['notebook']} | " + " | ".join(f"{r[m]:.0f}" for m in args.modes) + " |")


if __name__ == "__main__":
    main()
