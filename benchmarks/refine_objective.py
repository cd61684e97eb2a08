"""Experiment: the terms of effort's refinement objective (``CodecConfig.structure_weight``, ``rate_weight``).

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/refine_objective.py \
        --images 4 --crop 192 --effort 1 --bits 4,5,6 --structure 0 --rate 0,0.01,0.03,0.1

For each bit depth and pair of weights (structure: times 1 - MS-SSIM; rate: times estimated
bits per symbol), prints the mean bpp, PSNR and SSIMULACRA2 over the first
``--images`` Kodak images (centre crops of ``--crop`` pixels, or whole images with --crop 0),
and the PSNR of AVIF at each image's same byte budget, so settings can be compared on one
rate-distortion plane. docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np

from sdfs.bench import centre_crop, measure, measure_at_budget
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image

METRICS = ("psnr", "ssimulacra2")
SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--effort", type=int, default=2)
    parser.add_argument("--bits", default="5,6")
    parser.add_argument("--structure", default="0,0.1", help="structure weights to try")
    parser.add_argument("--rate", default="0", help="rate weights to try")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    images = [ImageData(centre_crop(read_image(f).rgb(), args.crop)) for f in files]
    model = load_model(device=args.device)
    print(f"{len(images)} Kodak images, crop {args.crop or 'none'}, effort {args.effort}, device {model.device}")
    print(f"{'bits':>4s} {'struct':>6s} {'rate':>6s} {'bpp':>6s} {'PSNR':>6s} {'SSIM2':>6s} {'AVIF PSNR':>9s} {'AVIF SSIM2':>10s} {'s':>6s}")
    for bits in (int(b) for b in args.bits.split(",")):
        for structure, rate in itertools.product(*(map(float, w.split(",")) for w in (args.structure, args.rate))):
            config = CodecConfig(bits=bits, effort=args.effort, structure_weight=structure, rate_weight=rate)
            codec = Codec(model, config)
            rows, start = [], time.perf_counter()
            for image in images:
                blob = codec.encode(image)
                decoded = codec.decode(blob).rgb()
                ours = measure(image.pixels, decoded, METRICS)
                theirs = measure_at_budget(image.pixels, "avif", len(blob), METRICS)
                rows.append((len(blob) * 8 / (image.width * image.height), ours["psnr"], ours["ssimulacra2"],
                             theirs["psnr"], theirs["ssimulacra2"]))
            mean = np.mean(rows, axis=0)
            print(f"{bits:4d} {structure:6.3f} {rate:6.3f} {mean[0]:6.3f} {mean[1]:6.2f} {mean[2]:6.1f} {mean[3]:9.2f} "
                  f"{mean[4]:10.1f} {time.perf_counter() - start:6.1f}", flush=True)


if __name__ == "__main__":
    main()
