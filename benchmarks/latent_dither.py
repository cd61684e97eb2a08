"""Experiment: decoder-side dither of sd3's coarse components, to put back texture the quantiser removed.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python latent_dither.py 256 8 4,6

(crop size, number of Kodak images, levels). Each rotated latent is dequantised with seeded uniform noise of
a fraction of its step added to the components whose step is at least a threshold times the steps' geometric
mean, in the encoder (its restoration filter sees the same latent) and the decoder alike. Prints bpp / PSNR /
SSIMULACRA2; docs/BENCHMARKS.md records the outcome (it lost everywhere).
"""
import sys

import numpy as np
from restoration_filter import SHARED, scores  # run from benchmarks/

from sdfs.bench import centre_crop
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image, quant
from sdfs.codec.quant import ROTATED, uniform_grid
from sdfs.codec.rotations import rotation_matrix

SETTINGS = ((0, 0), (0.5, 1.0), (1.0, 1.0), (0.5, 0.0), (1.0, 0.0))  # (fraction of the step, threshold)


def dithered_dequantize(amount: float, threshold: float, shipped):
    """``shipped`` dequantisation plus seeded noise of ``amount`` steps on the components whose step is at least
    ``threshold`` x the steps' geometric mean (noise on a component is its rotation's row times that noise)."""
    def dequantize(self: quant.QuantizedLatent) -> np.ndarray:
        values = shipped(self)
        if self.kind != ROTATED:
            return values
        _, step = uniform_grid(self.table, self.levels)
        relative = step / np.exp(np.log(step).mean())
        noise = np.random.default_rng(0).random(values.shape, dtype=np.float32) - 0.5
        noise *= (step * amount * (relative >= threshold))[:, None, None]
        matrix = rotation_matrix(self.rotation, len(self.table))
        return values + (matrix.T @ noise.reshape(len(self.table), -1)).reshape(values.shape)
    return dequantize


def main() -> None:
    crop, count, levels_list = int(sys.argv[1]), int(sys.argv[2]), [int(v) for v in sys.argv[3].split(",")]
    model = load_model("madebyollin/taesd3", device="cpu")
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:count]
    images = [ImageData(centre_crop(read_image(f).rgb(), crop)) for f in files]
    shipped = quant.QuantizedLatent.dequantize
    for levels in levels_list:
        for amount, threshold in SETTINGS:
            quant.QuantizedLatent.dequantize = dithered_dequantize(amount, threshold, shipped)
            bpp, psnr, ssim2, _ = scores(Codec(model, CodecConfig(levels=levels)), images)
            print(f"{levels} levels, dither {amount} of the step on components with step >= {threshold} x mean: "
                  f"{bpp:.3f} / {psnr:.2f} / {ssim2:.1f}", flush=True)
    quant.QuantizedLatent.dequantize = shipped


if __name__ == "__main__":
    main()
