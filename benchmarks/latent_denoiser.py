"""Experiment: can the decoder guess part of the quantisation error from the symbols around it?

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python latent_denoiser.py --bits 3,4
    ... latent_denoiser.py --model madebyollin/taesd3 --levels 4,5,6

A fixed linear "latent denoiser" (no bytes in the blob): per channel, the quantisation error in
steps is predicted from the 3x3 neighbourhood of symbols in all four channels. It is fitted on
the odd Kodak images' latents (fine-tuned encoder, effort 0) and tested on the even ones: the
share of the latent's quantisation error it removes, and the PSNR of the decoded photo (TAESD,
no restoration filter) without and with the correction. docs/BENCHMARKS.md has the outcome.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.codec import Codec, load_model, read_image
from sdfs.codec.quant import UniformQuantizer, uniform_grid
from sdfs.metrics import psnr


def neighbourhoods(symbols: np.ndarray, levels: int) -> np.ndarray:
    """(cells, 37): the centred symbols of the 3x3 neighbourhood in every channel, and a constant."""
    channels, height, width = symbols.shape
    padded = np.pad(symbols - (levels - 1) / 2, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    shifted = [padded[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width].reshape(channels, -1)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.concatenate(shifted + [np.ones((1, height * width))]).T


def to_pixels(image: torch.Tensor) -> np.ndarray:
    return ((image[0] + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bits", default="3,4")
    parser.add_argument("--levels", help="levels per value instead of --bits (4,5,6)")
    parser.add_argument("--model", default="madebyollin/taesd")
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    photos = {n: read_image(SHARED / "data" / "kodak" / f"kodim{n:02d}.png").rgb() for n in range(1, 25)}
    latents = {n: model.encode(Codec._to_tensor(p))[0].numpy() for n, p in photos.items()}
    depths = [int(v) for v in args.levels.split(",")] if args.levels else [1 << int(b) for b in args.bits.split(",")]
    for levels in depths:
        cases = {}
        for n, latent in latents.items():
            q = UniformQuantizer(levels=levels).quantize(latent)
            _, step = uniform_grid(q.table.astype(np.float32), q.levels)
            error = ((latent - q.dequantize()) / step[:, None, None]).reshape(len(step), -1)
            cases[n] = (neighbourhoods(q.symbols.astype(np.float64), q.levels), error, q, step)
        train, test = [n for n in cases if n % 2], [n for n in cases if not n % 2]
        weights = [np.linalg.lstsq(np.concatenate([cases[n][0] for n in train]),
                                   np.concatenate([cases[n][1][c] for n in train]), rcond=None)[0]
                   for c in range(len(latents[1]))]
        before = after = gain = 0.0
        for n in test:
            design, error, q, step = cases[n]
            guess = np.stack([design @ w for w in weights])
            before, after = before + float((error ** 2).sum()), after + float(((error - guess) ** 2).sum())
            plain = q.dequantize()
            corrected = plain + guess.reshape(plain.shape) * step[:, None, None]
            scores = [psnr(photos[n], to_pixels(model.decode(torch.from_numpy(z.astype(np.float32))[None])))
                      for z in (plain, corrected)]
            gain += scores[1] - scores[0]
            print(f"{levels} levels kodim{n:02d}: {scores[0]:.2f} -> {scores[1]:.2f} dB", flush=True)
        print(f"{levels} levels: removes {100 * (1 - after / before):.1f} % of the latent's quantisation error on the "
              f"even images; PSNR {gain / len(test):+.3f} dB on average")


if __name__ == "__main__":
    main()
