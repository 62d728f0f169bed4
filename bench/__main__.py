"""``make bench``: every row of the performance table beside its baseline, measured in one run.

    python -m bench [--quick] [--rows warm,cold,scale,density,snapstart] [--json PATH]

Prints the table (figure, goal, measured, baseline, ratio, met) and writes it as JSON
(``bench/results/latest.json`` by default). ``--quick`` is the one-minute smoke CI runs: short
runs, fewer samples, and nothing asserted. Run it on a quiet machine: the figures are
wall-clock and the load generators share the cores with lamina, as the issue's method says.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench import rows
from bench.harness import lamina

ALL = ("warm", "cold", "scale", "density", "snapstart")
# The quick smoke leaves out the SnapStart row by default: it installs numpy and pandas.
QUICK = ("warm", "cold", "scale", "density")


def machine() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def table(results: list[rows.Row]) -> str:
    header = ("figure", "goal", "measured", "baseline (same run)", "ratio", "met")
    lines = [header] + [(r.figure, r.goal, r.measured, r.baseline, r.ratio,
                         {True: "yes", False: "NO", None: "—"}[r.met]) for r in results]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |"
           for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke, no assertions")
    parser.add_argument("--rows", default=None,
                        help=f"some of {','.join(ALL)} (default: all; --quick: {','.join(QUICK)})")
    parser.add_argument("--json", default="bench/results/latest.json", help="where to write")
    args = parser.parse_args()
    rows_arg = args.rows or ",".join(QUICK if args.quick else ALL)
    wanted = [name.strip() for name in rows_arg.split(",") if name.strip()]
    options = rows.Options(quick=args.quick, seconds=2 if args.quick else 10)
    results: list[rows.Row] = []
    with lamina(LAMINA_ACCOUNT_CONCURRENCY="1000") as server:
        if "warm" in wanted:
            results += rows.warm(server, options)
        if "cold" in wanted:
            results += rows.cold_start(server, options)
        if "scale" in wanted:
            results += rows.scale_out(server, options)
    if "density" in wanted:
        results += rows.density(options)
    if "snapstart" in wanted:
        results += rows.snapstart(options)
    if args.quick:
        for row in results:
            row.met = None
    print(table(results))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), "quick": args.quick,
                                "rows": [row.__dict__ for row in results]}, indent=2))
    print(f"\nwritten to {path}")
    failed = [row.figure for row in results if row.met is False]
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
