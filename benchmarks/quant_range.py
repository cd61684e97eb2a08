"""Experiment: clip each latent channel's quantiser range to percentiles instead of min..max.

    HF_HUB_CACHE=../shared/hf/hub HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/quant_range.py 0.001

Prints bpp and PSNR at 3-6 bits on the first 8 Kodak images, for comparison with `... 0` (the
shipped min..max range). docs/BENCHMARKS.md records the outcome (not kept: it moves along the
same rate-distortion curve).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from sdfs.codec import Codec, quant, read_image
from sdfs.metrics import psnr

SHARED = Path(os.environ.get("SDFS_SHARED", Path(__file__).resolve().parents[2] / "shared"))


class ClippedUniformQuantizer(quant.UniformQuantizer):
    def __init__(self, bits: int, clip: float) -> None:
        super().__init__(bits)
        self.clip = clip

    def quantize(self, latent: np.ndarray) -> quant.QuantizedLatent:
        flat = latent.reshape(latent.shape[0], -1)
        low, high = np.quantile(flat, self.clip, axis=1), np.quantile(flat, 1 - self.clip, axis=1)
        high = np.where(high - low < 1e-3, low + 1e-3, high)
        table = np.stack([low, high], axis=1).astype(np.float16)
        q = quant.QuantizedLatent(quant.UNIFORM, self.levels, np.zeros((1,), np.int32), table)
        q.symbols = self.symbols_for(latent, q)
        return q


def main() -> None:
    clip = float(sys.argv[1]) if len(sys.argv) > 1 else 0.001
    images = [read_image(f) for f in sorted((SHARED / "data" / "kodak").glob("*.png"))[:8]]
    for bits in (3, 4, 5, 6):
        codec = Codec.from_pretrained(device="cpu", bits=bits)
        codec.quantizer = ClippedUniformQuantizer(bits, clip)
        bpp = quality = 0.0
        for image in images:
            blob = codec.encode(image)
            bpp += len(blob) * 8 / (image.width * image.height) / len(images)
            quality += psnr(image.pixels, codec.decode(blob).pixels) / len(images)
        print(f"clip {clip} bits {bits} bpp {bpp:.4f} psnr {quality:.3f}", flush=True)


if __name__ == "__main__":
    main()
