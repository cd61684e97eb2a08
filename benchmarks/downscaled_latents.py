"""Experiment: latents of a downscaled photo, decoded and scaled back up, against full-size latents.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/downscaled_latents.py \
        --images 4 --crop 256 --effort 1 --settings taesd:4:1,taesd:5:1,taesd3:3:0.5,taesd3:4:0.5

Each setting is MODEL:BITS:SCALE (MODEL under madebyollin/). The centre crop is resized by SCALE
(Lanczos), encoded and decoded by sdfs, resized back, and scored against the crop; bpp counts
the crop's pixels. AVIF gets the same bytes. TAESD3's 16 channels cost too many bytes at full
size, but its decoder is sharper, so a half-size SD3 latent could beat a full-size SD1 one.
docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sdfs.bench import centre_crop, measure, measure_at_budget
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
METRICS = ("psnr", "ssimulacra2")


def resize(pixels: np.ndarray, side: int) -> np.ndarray:
    return pixels if pixels.shape[0] == side else np.asarray(Image.fromarray(pixels).resize((side, side), Image.LANCZOS))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--effort", type=int, default=0)
    parser.add_argument("--settings", default="taesd:4:1,taesd:5:1,taesd3:3:0.5,taesd3:4:0.5")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    crops = [centre_crop(read_image(f).rgb(), args.crop)
             for f in sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]]
    models: dict = {}
    print(f"{len(crops)} Kodak crops of {args.crop} px, effort {args.effort}")
    for setting in args.settings.split(","):
        name, bits, scale = setting.split(":")
        if name not in models:
            models[name] = load_model(f"madebyollin/{name}", device=args.device)
        codec = Codec(models[name], CodecConfig(bits=int(bits), effort=args.effort))
        side = int(round(args.crop * float(scale) / 8)) * 8
        rows, start = [], time.perf_counter()
        for pixels in crops:
            blob = codec.encode(ImageData(resize(pixels, side)))
            ours = measure(pixels, resize(codec.decode(blob).rgb(), args.crop), METRICS)
            theirs = measure_at_budget(pixels, "avif", len(blob), METRICS)
            rows.append((len(blob) * 8 / args.crop ** 2, ours["psnr"], ours["ssimulacra2"], theirs["psnr"],
                         theirs["ssimulacra2"]))
        bpp, psnr, ssim2, avif_psnr, avif_ssim2 = np.mean(rows, axis=0)
        print(f"{setting:16s} {bpp:.3f} bpp  PSNR {psnr:.2f}  SSIM2 {ssim2:6.1f}  | AVIF {avif_psnr:.2f} {avif_ssim2:6.1f}"
              f"  {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
