"""Experiment: a per-image correction of the TAESD decoder's last layer, in place of the RGB filter.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python decoder_head.py \
        --images 2,5,9,13,17,21 --bits 4

The decoder's last layer maps 64 feature channels to RGB. Its output is linear in that layer's
weights, so the encoder could fit a correction to them by least squares, exactly as it fits the
restoration filter to RGB, but from 64 channels instead of 3: a 1x1 correction (64 weights and
a bias per colour, which the decoder would fold into the centre tap of the 3x3 conv). This
encodes each Kodak image as sdfs does (effort 0, with its restoration filter), fits the
correction to the decode of the stored latent (ridge regularised, coefficients rounded to
``1/step``), and compares it with the shipped filter. The side bytes are the coefficients in
signed exp-Golomb codes, less the RGB filter's bytes it would replace. docs/BENCHMARKS.md has
the outcome.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.codec import Codec, CodecConfig, load_model, read_image
from sdfs.metrics import psnr, ssimulacra2

VARIANTS = ((1e-9, 128), (1e-4, 64), (1e-3, 64), (1e-3, 32), (1e-2, 32))  # (ridge, 1/step)
FILTER_BYTES = {"5x5 cross-channel": 114, "3x3": 24, "none": 0}


def exp_golomb_bytes(values: np.ndarray) -> int:
    zigzag = np.where(values > 0, 2 * values - 1, -2 * values)
    return int(np.sum(2 * np.floor(np.log2(zigzag + 1)) + 1) + 7) // 8


def to_pixels(image: torch.Tensor) -> np.ndarray:
    return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def features_and_output(codec: Codec, blob: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's input to its last layer (64, H, W) and its output (3, H, W), for the stored latent."""
    seen = {}
    last = codec.model.vae.decoder.layers[-1]
    hook = last.register_forward_hook(lambda module, inputs, output: seen.update(features=inputs[0]))
    try:
        output = codec.model.decode(codec._latent_of(codec._parse(blob)))[0]
    finally:
        hook.remove()
    return seen["features"][0].float(), output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", default="2,5,9,13,17,21", help="Kodak image numbers")
    parser.add_argument("--bits", type=int, default=4)
    args = parser.parse_args()
    codec = Codec(load_model("madebyollin/taesd", device="cpu"), CodecConfig(bits=args.bits))
    totals: dict[str, np.ndarray] = {}
    for number in args.images.split(","):
        image = read_image(SHARED / "data" / "kodak" / f"kodim{int(number):02d}.png")
        original = image.rgb()
        target = torch.from_numpy(original).permute(2, 0, 1).double() / 127.5 - 1
        blob = codec.encode(image)
        decoded = codec.decode(blob).rgb()
        results = {"sdfs (RGB filter)": (len(blob), psnr(original, decoded), ssimulacra2(original, decoded))}
        features, output = features_and_output(codec, blob)
        height, width = original.shape[:2]
        design = torch.cat([features[:, :height, :width].reshape(64, -1).double(), torch.ones(1, height * width).double()])
        residual = (target - output[:, :height, :width].double()).reshape(3, -1)
        gram, right = design @ design.T, design @ residual.T
        without_filter = len(blob) - FILTER_BYTES[codec.info(blob).restoration]
        for ridge, inverse_step in VARIANTS:
            solution = torch.linalg.solve(gram + ridge * torch.trace(gram) / 65 * torch.eye(65).double(), right)
            stored = np.rint(solution.numpy() * inverse_step).astype(np.int64)
            corrected = output[:, :height, :width].double() + (design.T @ torch.from_numpy(stored / inverse_step)).T.reshape(3, height, width)
            pixels = to_pixels(corrected.float())
            results[f"head ridge {ridge:g}, step 1/{inverse_step}"] = (
                without_filter + exp_golomb_bytes(stored.ravel()), psnr(original, pixels), ssimulacra2(original, pixels))
        for name, row in results.items():
            totals[name] = totals.get(name, 0) + np.array(row)
        print(f"kodim{int(number):02d} " + " | ".join(f"{n}: {b} B {p:.2f} dB {s:.1f}" for n, (b, p, s) in results.items()),
              flush=True)
    count = len(args.images.split(","))
    reference = totals["sdfs (RGB filter)"] / count
    print(f"mean over {count} images, {args.bits} bits; net = PSNR change less 0.03 dB per 1 % of bytes")
    for name, total in totals.items():
        size, quality, ssim2 = total / count
        percent = 100 * (size / reference[0] - 1)
        print(f"  {name:32s} {size:7.0f} B ({percent:+.2f} %)  PSNR {quality:.3f} ({quality - reference[1]:+.3f}, "
              f"net {quality - reference[1] - 0.03 * percent:+.3f})  SSIMULACRA2 {ssim2:.2f} ({ssim2 - reference[2]:+.2f})")


if __name__ == "__main__":
    main()
