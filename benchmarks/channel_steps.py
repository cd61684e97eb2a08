"""Experiment: per-channel step sizes for the uniform quantiser (encoder side; the format is unchanged).

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/channel_steps.py \
        --sensitivity /tmp/train/*.jpg /tmp/train/*.png /tmp/sk/skimage/data/{astronaut,chelsea,coffee}.png
    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/channel_steps.py \
        --images 8 --bits 3,4,5,6 --mult 1,1,1,1 1,1,1.5,1 1,1,1.3,0.9

sdfs spreads each channel's 2^bits levels over that channel's range, so every channel gets the
same number of levels. High-rate theory says the steps should instead make each channel add the
same error to the decoded image: step_c proportional to 1 / sqrt(w_c), where w_c is the image's
squared error per unit of latent noise in channel c. ``--sensitivity`` measures w_c on photos
(not Kodak) by adding uniform noise to one channel of the latent at a time; ``--mult`` scales
each channel's step by a factor (the table's high end moves; symbols stay within the alphabet
when every factor is at least 1) and prints the rate-distortion points on the first Kodak images
at effort 0 and the BD-rate of each setting against the first. docs/BENCHMARKS.md has the outcome.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from restoration_filter import SHARED, scores  # the same scoring loop, run from benchmarks/

from sdfs.bench import bd_rate, centre_crop
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, quant, read_image
from sdfs.codec.images import pad_to_multiple


def sensitivity(model, files: list[Path], crop: int = 256, seed: int = 0) -> None:
    """Print each channel's range and its image MSE per unit of latent noise variance (5-bit steps)."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in files:
        pixels = pad_to_multiple(centre_crop(read_image(f).rgb(), crop), 8, 64)[0]
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            z = model.encode(x)
            base = ((model.decode(z) - x) ** 2).mean().item()
            ranges = (z.amax((2, 3)) - z.amin((2, 3)))[0].tolist()
            row = []
            for c, span in enumerate(ranges):
                step = span / 31
                noise = torch.zeros_like(z)
                noise[0, c] = torch.from_numpy(rng.uniform(-step / 2, step / 2, z.shape[2:])).float()
                row.append((((model.decode(z + noise) - x) ** 2).mean().item() - base) / (step ** 2 / 12))
        rows.append((ranges, row))
        print(f"{f.name:40s} range {' '.join(f'{r:5.2f}' for r in ranges)}  w {' '.join(f'{w:7.4f}' for w in row)}")
    ranges, weights = (np.mean([r[i] for r in rows], axis=0) for i in (0, 1))
    ideal = 1 / np.sqrt(np.maximum(weights, 1e-6))
    print(f"mean range {np.round(ranges, 2)}  mean w {np.round(weights, 4)}")
    print(f"ideal step / today's step (normalised): {np.round(ideal / ranges / np.exp(np.log(ideal / ranges).mean()), 2)}")


def with_multipliers(original, factors: list[float]):
    def quantize(self, latent: np.ndarray) -> quant.QuantizedLatent:
        q = original(self, latent)
        table = q.table.astype(np.float32)
        table[:, 1] = table[:, 0] + (table[:, 1] - table[:, 0]) * np.array(factors, np.float32)
        q.table = table.astype(np.float16)
        q.symbols = self.symbols_for(latent, q)
        return q
    return quantize


def curve(model, images: list[ImageData], bits: list[int]) -> list[tuple[float, float, float]]:
    """Mean (bpp, PSNR, SSIMULACRA2) at each bit depth, effort 0."""
    return [scores(Codec(model, CodecConfig(bits=b, effort=0)), images)[:3] for b in bits]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sensitivity", type=Path, nargs="*", help="photos to measure channel sensitivity on")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--bits", default="3,4,5,6")
    parser.add_argument("--mult", nargs="*", default=["1,1,1,1", "1,1,1.5,1"])
    args = parser.parse_args()
    model = load_model("madebyollin/taesd", device="cpu")
    if args.sensitivity:
        sensitivity(model, args.sensitivity)
        return
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    images = [ImageData(read_image(f).rgb()) for f in files]
    bits = [int(b) for b in args.bits.split(",")]
    original, curves = quant.UniformQuantizer.quantize, {}
    try:
        for setting in args.mult:
            quant.UniformQuantizer.quantize = with_multipliers(original, [float(v) for v in setting.split(",")])
            curves[setting] = curve(model, images, bits)
            for b, p in zip(bits, curves[setting]):
                print(f"steps x {setting}, {b} bits: {p[0]:.4f} bpp / {p[1]:.3f} dB / {p[2]:6.2f}", flush=True)
    finally:
        quant.UniformQuantizer.quantize = original
    reference = curves[args.mult[0]]
    for setting, points in curves.items():
        psnr, ssim2 = (bd_rate([(p[0], p[i]) for p in reference], [(p[0], p[i]) for p in points], (0, 1)) for i in (1, 2))
        print(f"steps x {setting}: BD-rate against {args.mult[0]}: PSNR {psnr:+.2f} %, SSIMULACRA2 {ssim2:+.2f} %")


if __name__ == "__main__":
    main()
