"""Experiment: how much smaller is the guard's AVIF if the quality it finds is re-encoded more slowly?

    cd benchmarks && ../.venv/bin/python guard_avif_speed.py --floor 30 --speeds 5,4 [--images 1,2,3]

For each Kodak image: the lowest AVIF quality meeting the SSIMULACRA2 floor at speed 6 (what the
guard's search probes with, bisection over 1..100), then, at each slower speed, that quality and
lower ones, one at a time, while they still meet the floor. Prints the bytes, where the walk
stopped and its seconds, and the totals against speed 6. docs/BENCHMARKS.md has the outcome.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from guard_formats import encode, smallest_meeting  # run from benchmarks/
from PIL import Image
from restoration_filter import SHARED

from sdfs.metrics import Ssimulacra2Reference


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--floor", type=float, default=30)
    parser.add_argument("--speeds", default="5,4")
    parser.add_argument("--images", default=",".join(map(str, range(1, 25))))
    args = parser.parse_args()
    speeds = [int(s) for s in args.speeds.split(",")]
    totals: dict[str, list[int]] = {"speed 6": [], **{f"speed {s}": [] for s in speeds}}
    for number in map(int, args.images.split(",")):
        pixels = np.asarray(Image.open(SHARED / "data" / "kodak" / f"kodim{number:02d}.png").convert("RGB"))
        judge, cache = Ssimulacra2Reference(pixels).score, {}
        found = smallest_meeting(pixels, "avif", args.floor, judge, cache, [])
        quality = min(q for (_, q), (_, score) in cache.items() if score >= args.floor)
        totals["speed 6"].append(found)
        line = f"kodim{number:02d} speed 6: q{quality} {found} B"
        for speed in speeds:
            best, lowest, probes, start = found, None, 0, time.perf_counter()
            for candidate in range(quality, 0, -1):
                data = encode(pixels, f"avif@{speed}", candidate, [])
                probes += 1
                if judge(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))) < args.floor:
                    break
                best, lowest = min(best, len(data)), candidate
            totals[f"speed {speed}"].append(best)
            stop = f"q{lowest}" if lowest else f"q{quality} misses"
            line += f" | speed {speed}: {stop} {best} B ({probes} probes, {time.perf_counter() - start:.1f} s)"
        print(line, flush=True)
    for name, sizes in totals.items():
        print(f"{name}: {sum(sizes)} B ({100 * (sum(sizes) / sum(totals['speed 6']) - 1):+.1f} %)")


if __name__ == "__main__":
    main()
