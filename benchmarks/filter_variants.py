"""Experiment: which shape of least-squares restoration filter is worth its bytes.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python filter_variants.py --images 8 --bits 4,5

Encodes the first ``--images`` Kodak images without the filter (effort 0), then fits each
variant to the decode by least squares, stores its coefficients as int16 (as the codec does)
and prints its side bytes and the mean change in bytes, PSNR and SSIMULACRA2. Variants: 3x3
(sdfs's small filter) or 5x5 symmetric rings, each channel alone or reading all three, and
ALF-style classes (one filter per quartile/octile of local activity, which the decoder can
compute from its own output). docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.codec import Codec, CodecConfig, ImageData, load_model, read_image
from sdfs.codec.postfilter import RINGS_3X3, RINGS_5X5
from sdfs.metrics import psnr, ssimulacra2

VARIANTS = {  # name: (rings, read all channels, activity classes)
    "none": None, "3x3": (RINGS_3X3, False, 1), "3x3 cross": (RINGS_3X3, True, 1),
    "5x5": (RINGS_5X5, False, 1), "5x5 cross": (RINGS_5X5, True, 1), "3x3 4cls": (RINGS_3X3, False, 4),
    "3x3 cross 4cls": (RINGS_3X3, True, 4), "5x5 4cls": (RINGS_5X5, False, 4), "3x3 8cls": (RINGS_3X3, False, 8),
    "5x5 cross 4cls": (RINGS_5X5, True, 4),
}


def ring_sums(x: np.ndarray, ring) -> np.ndarray:
    """(C, H, W) -> the sum over ``ring``'s offsets, borders mirrored."""
    p = F.pad(torch.from_numpy(x)[None], (2, 2, 2, 2), mode="reflect")[0].numpy()
    height, width = x.shape[1:]
    return sum(p[:, 2 + dy:2 + dy + height, 2 + dx:2 + dx + width] for dy, dx in ring)


def design(decoded: np.ndarray, rings, cross: bool) -> list[np.ndarray]:
    """Per output channel, its (taps, H, W) inputs: ring sums of its own channel or all, and a constant."""
    sums = np.stack([ring_sums(decoded, r) for r in rings], 1)
    ones = np.ones((1,) + decoded.shape[1:])
    return [np.concatenate(([sums[k] for k in range(len(decoded))] if cross else [sums[c]]) + [ones])
            for c in range(len(decoded))]


def activity_classes(decoded: np.ndarray, count: int) -> np.ndarray:
    if count == 1:
        return np.zeros(decoded.shape[1:], int)
    luma = decoded.mean(0)
    laplacian = np.abs(4 * luma - ring_sums(luma[None], RINGS_3X3[1])[0])
    activity = F.avg_pool2d(torch.from_numpy(laplacian)[None, None], 5, 1, 2, count_include_pad=False)[0, 0].numpy()
    return np.searchsorted(np.quantile(activity, np.linspace(0, 1, count + 1)[1:-1]), activity)


def fit_and_apply(decoded: np.ndarray, original: np.ndarray, rings, cross: bool, classes: int):
    inputs, labels = design(decoded, rings, cross), activity_classes(decoded, classes)
    out, coefficients = np.empty_like(decoded), 0
    for c, taps in enumerate(inputs):
        for k in range(classes):
            mask = labels == k
            a = taps[:, mask].T
            w = np.rint(np.linalg.lstsq(a, original[c][mask], rcond=None)[0] * 4096) / 4096
            out[c][mask] = a @ w
            coefficients += taps.shape[0]
    return out, coefficients


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--bits", default="4,5")
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    model = load_model("madebyollin/taesd", device="cpu")
    for bits in (int(b) for b in args.bits.split(",")):
        codec = Codec(model, CodecConfig(bits=bits, restoration=False))
        results = {v: [] for v in VARIANTS}
        for f in files:
            image = ImageData(read_image(f).rgb())
            blob = codec.encode(image)
            decoded8 = codec.decode(blob).rgb()
            original, decoded = (a.transpose(2, 0, 1).astype(np.float64) for a in (image.pixels, decoded8))
            for name, spec in VARIANTS.items():
                out, count = (decoded, 0) if spec is None else fit_and_apply(decoded, original, *spec)
                out8 = np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(1, 2, 0)
                results[name].append((len(blob) + 2 * count, psnr(image.pixels, out8),
                                      ssimulacra2(image.pixels, out8), 2 * count))
        base = np.mean(results["none"], 0)
        print(f"{bits} bits, {len(files)} Kodak, effort 0 (unfiltered: {base[0]:.0f} bytes): "
              "variant / side bytes / bytes / change in PSNR / in SSIMULACRA2")
        for name, rows in results.items():
            m = np.mean(rows, 0)
            print(f"  {name:16s} {m[3]:5.0f} {m[0]:7.0f} ({100 * (m[0] / base[0] - 1):+.1f} %) "
                  f"{m[1] - base[1]:+.3f} dB {m[2] - base[2]:+.2f}", flush=True)


if __name__ == "__main__":
    main()
