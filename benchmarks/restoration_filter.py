"""Experiment: the encoder-fitted restoration filter (``CodecConfig.restoration``), on and off.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/restoration_filter.py \
        --images 8 --bits 4,5,6 [--model madebyollin/taesdxl] [--effort 0] [--quantizer uniform] [--crop 0]

For each bit depth, encodes the first ``--images`` Kodak images (or centre crops of ``--crop``
pixels) with and without the filter and prints mean bpp, PSNR and SSIMULACRA2 of both.
docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from sdfs.bench import centre_crop, measure
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
METRICS = ("psnr", "ssimulacra2")


def scores(codec: Codec, images: list[ImageData], reader: Codec | None = None) -> tuple[float, float, float, float]:
    """Mean bpp, PSNR, SSIMULACRA2 of ``codec``'s blobs decoded by ``reader`` (default: ``codec``), and the seconds."""
    rows, start = [], time.perf_counter()
    for image in images:
        blob = codec.encode(image)
        result = measure(image.pixels, (reader or codec).decode(blob).rgb(), METRICS)
        rows.append((len(blob) * 8 / (image.width * image.height), result["psnr"], result["ssimulacra2"]))
    return (*np.mean(rows, axis=0), time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--bits", default="4,5,6")
    parser.add_argument("--model", default="madebyollin/taesd")
    parser.add_argument("--effort", type=int, default=0)
    parser.add_argument("--quantizer", default="uniform")
    parser.add_argument("--crop", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    images = [ImageData(centre_crop(read_image(f).rgb(), args.crop)) for f in files]
    model = load_model(args.model, device=args.device)
    print(f"{len(images)} Kodak images (crop {args.crop or 'none'}), {args.model}, {args.quantizer}, "
          f"effort {args.effort}: bpp / PSNR / SSIMULACRA2 / encode+decode s")
    for bits in (int(b) for b in args.bits.split(",")):
        config = dict(bits=bits, effort=args.effort, quantizer=args.quantizer)
        off = scores(Codec(model, CodecConfig(**config, restoration=False)), images)
        on = scores(Codec(model, CodecConfig(**config)), images)
        print(f"{bits} bits  without: {off[0]:.3f} / {off[1]:.2f} / {off[2]:6.1f} / {off[3]:5.0f}   "
              f"with: {on[0]:.3f} / {on[1]:.2f} / {on[2]:6.1f} / {on[3]:5.0f}   "
              f"gain {on[1] - off[1]:+.2f} dB {on[2] - off[2]:+.1f}", flush=True)


if __name__ == "__main__":
    main()
