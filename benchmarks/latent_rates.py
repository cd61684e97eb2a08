"""Would a latent at another rate beat the guard's AVIF? Per Kodak photo, sd3 latents at several levels against the
AVIF file a guard run stored.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/latent_rates.py \
        --guard benchmarks/results/guard_kodak_sd3_8L_2026-12-08.csv [--floor ssimulacra2:30] [--images kodim13,kodim06]

The issue asks the guard for the smallest of {latent at some rate, AVIF at some quality, original}; the guard codes
the latent at the store's one rate. This measures what searching the rate would add: for each photo the encoder
runs once, the latent is coded at each of ``LEVELS`` in turn until its blob is no smaller than the guard's AVIF
file, and the largest level under that size is decoded and judged with the floor's metric, then the next lower
ones while they still meet the floor. A level that meets the floor under AVIF's bytes is one the guard would gain.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

from sdfs.codec import DEFAULT_MODEL, Codec, CodecConfig, read_image
from sdfs.codec.codec import MIN_SIDE
from sdfs.codec.images import pad_to_multiple
from sdfs.guard import DEFAULT_FLOOR, QualityFloor, scoring_view

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
LEVELS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guard", type=Path, required=True, help="a guard_kodak.py CSV: the AVIF bytes to beat")
    parser.add_argument("--floor", default=DEFAULT_FLOOR)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--images", help="comma-separated names (default: every row of --guard)")
    args = parser.parse_args()
    rows = {row["image"]: row for row in csv.DictReader(open(args.guard))}
    names = args.images.split(",") if args.images else sorted(rows)
    floor = QualityFloor.parse(args.floor)
    base = Codec.from_pretrained(args.model, device="cpu")
    codecs = {levels: Codec(base.model, CodecConfig(levels=levels)) for levels in LEVELS}
    print(f"{args.model}, floor {floor}, the AVIF bytes of {args.guard.name}; levels coded until the blob reaches them")
    wins = 0
    for name in names:
        started = time.perf_counter()
        budget = int(rows[name]["avif_bytes"] or rows[name]["original_bytes"])
        image = read_image((SHARED / "data" / "kodak" / f"{name}.png").read_bytes())
        x = base._to_tensor(pad_to_multiple(image.rgb(), base.model.factor, MIN_SIDE)[0])
        [latent] = base._encode_tensors([x])
        blobs = {}
        for levels, codec in codecs.items():
            blobs[levels] = codec._finish(codec._code(image, image, x, latent))[0]
            if len(blobs[levels]) >= budget:
                break
        judge = floor.scorer(scoring_view(image.rgb()))
        scores = {}
        for levels in sorted((n for n, blob in blobs.items() if len(blob) < budget), reverse=True):
            scores[levels] = judge(scoring_view(base.decode(blobs[levels]).rgb()))
            if not floor.met_by(scores[levels]):
                break
        passing = [levels for levels, score in scores.items() if floor.met_by(score)]
        wins += bool(passing)
        found = f"{min(passing)} levels, {len(blobs[min(passing)])} B" if passing else "none"
        print(f"{name}: AVIF {budget} B; blobs {' '.join(f'{n}L:{len(b)}' for n, b in blobs.items())}; "
              f"judged {' '.join(f'{n}L:{s:.1f}' for n, s in scores.items())}; a latent under AVIF meeting the floor: "
              f"{found} ({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"photos where some level beats the guard's AVIF: {wins} of {len(names)}")


if __name__ == "__main__":
    main()
