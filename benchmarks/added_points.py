"""What some sdfs rate points add to the others' curve, each measured against the same AVIF curve.

    python benchmarks/merge_bench.py RUN_A/results.csv RUN_B/results.csv --out MERGED
    python benchmarks/added_points.py MERGED/results.csv --added s      # the points whose name holds "s" (scaled)

``sdfs bench`` gives AVIF each sdfs point's bytes, so a run with more sdfs points also has a denser
AVIF curve, and its BD-rate against AVIF moves with that too. This holds the AVIF curve (all of
its rows) fixed and prints, per metric and bpp range, the BD-rate against AVIF of the sdfs front
without the added points and with them, and of the one against the other. The fronts are
``sdfs.bench.curves``'s: per metric, the points no other beats on both bytes and quality.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sdfs.bench import METRICS, bd_rate, curves, read_rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", type=Path, help="a results CSV with the added points and the others")
    parser.add_argument("--added", required=True, help="the added sdfs points are those whose name contains this")
    parser.add_argument("--reference", default="avif")
    args = parser.parse_args()
    rows = read_rows(args.csv)
    every_point = curves(rows)
    reference, with_added = every_point[args.reference], every_point["sdfs"]
    without = curves([r for r in rows if not r.codec.startswith("sdfs") or args.added not in r.point])["sdfs"]
    for low, high in ((0.05, 0.5), (0.05, 0.3)):
        print(f"BD-rate over {low}-{high} bpp (negative = fewer bytes):")
        for metric in METRICS:
            before = bd_rate(reference[metric], without[metric], (low, high))
            after = bd_rate(reference[metric], with_added[metric], (low, high))
            gain = bd_rate(without[metric], with_added[metric], (low, high))
            print(f"  {metric:12s} vs {args.reference}: {before:+6.1f} % -> {after:+6.1f} %;  "
                  f"with the added points vs without: {gain:+5.1f} %")
    for metric in METRICS:
        front = ", ".join(f"{b:.3f} {q:.3f}" for b, q in with_added[metric])
        print(f"sdfs front ({metric}): {front}")


if __name__ == "__main__":
    main()
