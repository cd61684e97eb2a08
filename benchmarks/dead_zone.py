"""Experiment: a dead-zone uniform quantiser (encoder side only; the format is unchanged).

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/dead_zone.py \
        [--images 8] [--bits 4,5] [--theta 0,0.15,0.3]

Rounds each latent value towards its channel's median level: a value whose distance from the
median is d steps gets floor(|d| + 0.5 - theta) steps instead of round(|d|). Fewer symbols
leave the median, so the context coder spends fewer bits, at some error. Prints mean bpp, PSNR
and SSIMULACRA2 over the first Kodak images at effort 0 for each theta (0 = sdfs's rounding).
docs/BENCHMARKS.md records the outcome (it lost).
"""

from __future__ import annotations

import argparse

import numpy as np
from restoration_filter import SHARED, scores  # the same scoring loop, run from benchmarks/

from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image
from sdfs.codec import quant


def dead_zone_symbols(theta: float):
    def symbols_for(self, latent: np.ndarray, q: quant.QuantizedLatent) -> np.ndarray:
        low, step = quant.uniform_grid(q.table, q.levels)
        codes = (latent - low[:, None, None]) / step[:, None, None]
        median = np.rint(np.median(codes.reshape(codes.shape[0], -1), axis=1))[:, None, None]
        d = codes - median
        rounded = median + np.sign(d) * np.floor(np.abs(d) + 0.5 - theta)
        return np.clip(rounded, 0, q.levels - 1).astype(np.int32)
    return symbols_for


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--bits", default="4,5")
    parser.add_argument("--theta", default="0,0.15,0.3")
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    images = [ImageData(read_image(f).rgb()) for f in files]
    model = load_model("madebyollin/taesd", device="cpu")
    rounding = quant.UniformQuantizer.symbols_for
    for bits in (int(b) for b in args.bits.split(",")):
        for theta in (float(t) for t in args.theta.split(",")):
            quant.UniformQuantizer.symbols_for = dead_zone_symbols(theta) if theta else rounding
            bpp, psnr, ssim2, _ = scores(Codec(model, CodecConfig(bits=bits, effort=0)), images)
            print(f"{bits} bits, theta {theta}: {bpp:.4f} bpp / {psnr:.3f} dB / {ssim2:6.2f}", flush=True)
    quant.UniformQuantizer.symbols_for = rounding


if __name__ == "__main__":
    main()
