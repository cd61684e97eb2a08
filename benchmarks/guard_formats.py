"""Experiment: would the quality guard store fewer bytes with JPEG XL, or with a slower AVIF?

    cd benchmarks && ../.venv/bin/python guard_formats.py --floors 30,50,70 [--images 1,2,3] \
        [--formats avif,jxl] [--formats avif,avif@4,avif@3] [--formats avif,avif444]

For each Kodak image and each SSIMULACRA2 floor, finds by bisection over quality 1..100 the
smallest file of each format that meets the floor: AVIF at speed 6 (the guard's search) or
``avif@S`` at speed S, ``avif444`` with full-resolution chroma, and JPEG XL (libjxl effort 7,
through pillow-jxl-plugin). Prints their bytes, the totals against the first format (and what a
guard choosing the smaller of it and each other would save) and each format's mean encode
seconds. docs/BENCHMARKS.md has the outcome.
"""

from __future__ import annotations

import argparse
import io
import math
import time

import numpy as np
from PIL import Image
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.bench import encode_conventional
from sdfs.metrics import Ssimulacra2Reference


def encode(pixels: np.ndarray, fmt: str, quality: int, seconds: list[float]) -> bytes:
    """``fmt`` is avif, jxl, or avif@S for AVIF at speed S; avif444 and avif444@S keep full-resolution
    chroma (AVIF is otherwise Pillow's 4:2:0). Appends the encode time to ``seconds``."""
    start = time.perf_counter()
    name, _, speed = fmt.partition("@")
    if name == "avif444" or speed:
        buffer = io.BytesIO()
        subsampling = "4:4:4" if name == "avif444" else "4:2:0"
        Image.fromarray(pixels).save(buffer, "AVIF", quality=quality, speed=int(speed or 6), subsampling=subsampling)
        data = buffer.getvalue()
    else:
        data = encode_conventional(pixels, name, quality)
    seconds.append(time.perf_counter() - start)
    return data


def smallest_meeting(pixels: np.ndarray, fmt: str, floor: float, judge, cache: dict,
                     seconds: list[float]) -> int | None:
    """Bytes of the lowest quality of ``fmt`` scoring at least ``floor``; None if even 100 does not."""
    low, high, best = 1, 100, None
    while low <= high:
        quality = (low + high) // 2
        if (fmt, quality) not in cache:
            data = encode(pixels, fmt, quality, seconds)
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
    parser.add_argument("--formats", default="avif,jxl", help="avif, avif@SPEED, avif444[@SPEED], jxl; the first is the reference")
    args = parser.parse_args()
    floors = [float(f) for f in args.floors.split(",")]
    formats = args.formats.split(",")
    totals: dict[tuple[float, str], list[float]] = {(f, fmt): [] for f in floors for fmt in formats}
    seconds: dict[str, list[float]] = {fmt: [] for fmt in formats}
    for number in map(int, args.images.split(",")):
        pixels = np.asarray(Image.open(SHARED / "data" / "kodak" / f"kodim{number:02d}.png").convert("RGB"))
        judge, cache, cells = Ssimulacra2Reference(pixels).score, {}, []
        for floor in floors:
            for fmt in formats:
                size = smallest_meeting(pixels, fmt, floor, judge, cache, seconds[fmt])
                totals[(floor, fmt)].append(math.nan if size is None else size)
                cells.append(f"{fmt}@{floor:g} {size if size is not None else '-'}")
        print(f"kodim{number:02d} " + " ".join(cells), flush=True)
    reference = formats[0]
    for floor in floors:
        first = np.array(totals[(floor, reference)])
        cells = [f"{reference} {np.nansum(first):.0f} B"]
        for fmt in formats[1:]:
            other = np.array(totals[(floor, fmt)])
            both = np.nansum(np.fmin(first, other))
            cells.append(f"{fmt} {np.nansum(other):.0f} B ({100 * (np.nansum(other) / np.nansum(first) - 1):+.1f} %), "
                         f"smaller on {int((other < first).sum())}/{len(first)}, the smaller of the two {both:.0f} B "
                         f"({100 * (both / np.nansum(first) - 1):+.1f} %)")
        print(f"floor ssimulacra2:{floor:g}: " + "; ".join(cells))
    print("mean encode seconds: " + ", ".join(f"{fmt} {np.mean(s):.3f}" for fmt, s in seconds.items()))


if __name__ == "__main__":
    main()
