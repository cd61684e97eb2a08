"""BD-rate of one codec version's sdfs curve against another's, from their ``sdfs bench`` results.

    python benchmarks/compare_runs.py --before OLD.csv [OLD2.csv ...] --after NEW.csv [...]

Each side may be several runs' CSVs (e.g. the full-size and the shrunk-photo points). Only the sdfs points
both sides measured are used, so the curves compare like with like. Prints, per metric and bpp range, the
BD-rate of the new curve against the old (on all common points, and on the full-size ones alone) and of each
against one AVIF curve pooled from every run's AVIF rows (``sdfs bench`` gives AVIF each run's own budgets).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

from sdfs.bench import METRICS, Row, bd_rate, curves, read_rows


def sdfs_curves(rows: list[Row], points: set[str], full_size_only: bool = False) -> dict:
    return curves([r for r in rows if r.codec.startswith("sdfs") and r.point in points
                   and not (full_size_only and "s" in r.point)])["sdfs"]


def shown(value: float) -> str:
    return "n/a (no common quality)" if math.isnan(value) else f"{value:+.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, nargs="+", required=True)
    parser.add_argument("--after", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    before = [r for path in args.before for r in read_rows(path)]
    after = [r for path in args.after for r in read_rows(path)]
    common = {r.point for r in before if r.codec.startswith("sdfs")} & {r.point for r in after if r.codec.startswith("sdfs")}
    print(f"common sdfs points: {', '.join(sorted(common))}")
    avif = curves([replace(r, point=f"{r.point} in {run}") for run, rows in enumerate((before, after))
                   for r in rows if r.codec == "avif"])["avif"]  # the runs' budgets differ, so keep every one
    old, new = sdfs_curves(before, common), sdfs_curves(after, common)
    old_full, new_full = sdfs_curves(before, common, True), sdfs_curves(after, common, True)
    for bpp_range in ((0.05, 0.5), (0.05, 0.3)):
        print(f"BD-rate over {bpp_range[0]}-{bpp_range[1]} bpp (negative = fewer bytes):")
        for metric in METRICS:
            print(f"  {metric:12s} after vs before: {shown(bd_rate(old[metric], new[metric], bpp_range))} "
                  f"(full size only {shown(bd_rate(old_full[metric], new_full[metric], bpp_range))});  "
                  f"vs the pooled AVIF curve: before {shown(bd_rate(avif[metric], old[metric], bpp_range))}, "
                  f"after {shown(bd_rate(avif[metric], new[metric], bpp_range))}")


if __name__ == "__main__":
    main()
