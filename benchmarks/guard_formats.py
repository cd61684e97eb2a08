"""Experiment: would the quality guard store fewer bytes with JPEG XL as well as AVIF?

    cd benchmarks && ../.venv/bin/python guard_formats.py --floors 30,50,70 [--images 1,2,3]

For each Kodak image and each SSIMULACRA2 floor, finds by bisection over quality 1..100 the
smallest AVIF (speed 6, as the guard writes it) and JPEG XL (libjxl effort 7, through
pillow-jxl-plugin) that meet the floor, and prints their bytes and the totals: how much a guard
choosing the smaller of the two would save over AVIF alone. docs/BENCHMARKS.md has the outcome.
"""

from __future__ import annotations

import argparse
import io
import math

import numpy as np
from PIL import Image
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.bench import encode_conventional
from sdfs.metrics import Ssimulacra2Reference

FORMATS = ("avif", "jxl")


def smallest_meeting(pixels: np.ndarray, fmt: str, floor: float, judge, cache: dict) -> int | None:
    """Bytes of the lowest quality of ``fmt`` scoring at least ``floor``; None if even 100 does not."""
    low, high, best = 1, 100, None
    while low <= high:
        quality = (low + high) // 2
        if (fmt, quality) not in cache:
            data = encode_conventional(pixels, fmt, quality)
            cache[(fmt, quality)] = (len(data), judge(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
        size, score = cache[(fmt, quality)]
        if score >= floor:
            best, high = size, quality - 1
        else:
            low = quality + 1
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--floors", default="30,50,70", help="SSIMULACRA2 floors")
    parser.add_argument("--images", default=",".join(map(str, range(1, 25))), help="Kodak image numbers")
    args = parser.parse_args()
    floors = [float(f) for f in args.floors.split(",")]
    totals: dict[tuple[float, str], list[float]] = {(f, fmt): [] for f in floors for fmt in FORMATS}
    for number in map(int, args.images.split(",")):
        pixels = np.asarray(Image.open(SHARED / "data" / "kodak" / f"kodim{number:02d}.png").convert("RGB"))
        judge, cache, cells = Ssimulacra2Reference(pixels).score, {}, []
        for floor in floors:
            for fmt in FORMATS:
                size = smallest_meeting(pixels, fmt, floor, judge, cache)
                totals[(floor, fmt)].append(math.nan if size is None else size)
                cells.append(f"{fmt}@{floor:g} {size if size is not None else '-'}")
        print(f"kodim{number:02d} " + " ".join(cells), flush=True)
    for floor in floors:
        avif, jxl = (np.array(totals[(floor, fmt)]) for fmt in FORMATS)
        both = np.nansum(np.fmin(avif, jxl))
        print(f"floor ssimulacra2:{floor:g}: avif {np.nansum(avif):.0f} B, jxl {np.nansum(jxl):.0f} B, jxl smaller on "
              f"{int((jxl < avif).sum())}/{len(avif)}, the smaller of the two {both:.0f} B "
              f"({100 * (both / np.nansum(avif) - 1):+.1f} % against AVIF alone)")


if __name__ == "__main__":
    main()
