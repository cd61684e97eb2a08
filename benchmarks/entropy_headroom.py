"""Experiment: how far the context coder is from what richer models of the latent would give.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python entropy_headroom.py --bits 4,5

Encodes all 24 Kodak images to latents once (fine-tuned encoder, effort 0), quantises them
uniformly and prints the ideal code length in bits per latent value (-log2 p summed, plus the
side information) of sdfs's context coder and of variants of it:

- ``3 previous planes``: predict from the three planes coded before, not two;
- ``residual activity``: the spread also counts how badly the previous planes were predicted here;
- ``Laplace mixture``: each group may code against an equal mix of two Laplace scales
  (spread 0, 2, 4, 6 or 8 scale steps, chosen per group: shape, not just scale);
- ``oracle histograms``: each group's residuals against their own empirical histogram per
  activity bucket, with no side cost (a bound no real coder reaches).

docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.codec import Codec, CodecConfig, load_model, read_image
from sdfs.codec import entropy as E
from sdfs.codec.quant import UniformQuantizer


def latents(model: str = "madebyollin/taesd", images: int = 24) -> list[np.ndarray]:
    codec = Codec(load_model(model, device="cpu"), CodecConfig())
    out = []
    for number in range(1, images + 1):
        image = read_image(SHARED / "data" / "kodak" / f"kodim{number:02d}.png")
        out.append(codec._encode_tensors([codec._to_tensor(image.rgb())])[0])
    return out


PREVIOUS = {"3 previous planes": 3, "4 previous planes": 4, "all previous planes": 64}
VARIANTS = ("sdfs", "3 previous planes", "residual activity", "Laplace mixture", "oracle histograms")


def group(coder: E._ContextCoder, known: np.ndarray, plane: int, phase: int, previous: int) -> E._Group:
    """sdfs's context (``_ContextCoder.group``) with ``previous`` planes instead of two."""
    mask, centred = coder._masks[E.PHASES_V1[phase]], known - coder.mid
    pattern = E.DIAGONAL if phase == 1 else E.DIRECT
    features, activity = [np.ones(int(mask.sum()), np.int64)], np.zeros(int(mask.sum()), np.int64)
    if phase > 0:
        total, activity = E._neighbourhood(centred[plane], pattern, mask)
        features.append(total)
        if phase == 3:
            features.append(E._neighbourhood(centred[plane], E.DIAGONAL, mask)[0])
    for prev in range(plane - 1, plane - 1 - previous, -1):
        if prev < 0:
            continue
        total, spread = E._neighbourhood(centred[prev], pattern, mask)
        features += [centred[prev][mask], total]
        if phase == 0 and prev == plane - 1:
            activity = spread + np.abs(4 * centred[prev][mask] - total)
    return E._Group(np.stack(features, axis=1), activity, mask)


def laplace_bits(coder, base, frac, scale, target) -> float:
    p = coder.probabilities(base, frac, scale)
    p /= p.sum(axis=1, keepdims=True)
    return float(-np.log2(p[np.arange(len(target)), target]).sum())


def group_bits(coder, g: E._Group, target: np.ndarray, variant: str, activity: np.ndarray | None) -> tuple[float, np.ndarray]:
    weights = E._rounded(E._fit_weights(g.features, target - coder.mid), 0)
    base, frac = coder.predict(g, weights)
    buckets = E._bucket(g.activity if activity is None else activity)
    nearest = base + (frac >= (1 << (E.WEIGHT_BITS - 1)))
    residual = target - nearest
    side = 0 if variant == "free side information" else 8 * len(E._pack_group(weights, 0, 0))
    if variant == "oracle histograms":
        bits = 0.0
        for b in np.unique(buckets):
            _, counts = np.unique(residual[buckets == b], return_counts=True)
            bits -= float((counts * np.log2(counts / counts.sum())).sum())
        return bits, np.abs(residual)
    alpha, beta, _, _ = E._fit_scale_rule(residual, buckets, coder.levels)
    scale = E._scale_of(buckets, alpha, beta)
    if variant != "Laplace mixture":
        return laplace_bits(coder, base, frac, scale, target) + side, np.abs(residual)
    best = np.inf
    for spread in (0, 2, 4, 6, 8):
        for shift in (-2, -1, 0, 1, 2):
            s = np.clip(scale + shift, 0, E.SCALES - 1)
            lo, hi = np.clip(s - spread, 0, E.SCALES - 1), np.clip(s + spread, 0, E.SCALES - 1)
            p = sum(coder.probabilities(base, frac, k) / coder.probabilities(base, frac, k).sum(1, keepdims=True)
                    for k in (lo, hi)) / 2
            best = min(best, float(-np.log2(p[np.arange(len(target)), target]).sum()))
    return best + side + 6, np.abs(residual)  # 6 bits name the spread and shift


def bits_per_value(all_latents: list[np.ndarray], bits: int, variant: str) -> float:
    total = count = 0
    for latent in all_latents:
        symbols = UniformQuantizer(bits).quantize(latent).symbols.astype(np.int64)
        coder = E._ContextCoder(symbols.shape, 1 << bits, E.CONTEXT_V1)  # the coder measured then
        known, misses = np.zeros_like(symbols), np.zeros_like(symbols)
        for plane, phase in ((p, f) for p in range(coder.planes) for f in range(len(E.PHASES_V1))):
            g = group(coder, known, plane, phase, PREVIOUS.get(variant, 2))
            activity = None
            if variant == "residual activity" and plane > 0:
                missed = misses[:plane].sum(axis=0)
                activity = g.activity + E._neighbourhood(missed, E.DIRECT, g.mask)[0] + 4 * missed[g.mask]
            target = symbols[plane][g.mask]
            spent, miss = group_bits(coder, g, target, variant, activity)
            total += spent
            known[plane][g.mask], misses[plane][g.mask] = target, miss
        count += symbols.size
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bits", default="4,5")
    parser.add_argument("--model", default="madebyollin/taesd")
    parser.add_argument("--images", type=int, default=24, help="the first N Kodak images")
    parser.add_argument("--variants", default=",".join(VARIANTS[1:]))
    args = parser.parse_args()
    torch.set_num_threads(2)
    all_latents = latents(args.model, args.images)
    variants = ("sdfs", *args.variants.split(","))
    print(f"bits per latent value, {args.images} Kodak images, {args.model} (change against sdfs's coder)")
    for bits in map(int, args.bits.split(",")):
        ours = bits_per_value(all_latents, bits, "sdfs")
        row = [f"{bits} bits: sdfs {ours:.4f}"]
        for variant in variants[1:]:
            value = bits_per_value(all_latents, bits, variant)
            row.append(f"{variant} {value:.4f} ({100 * (value / ours - 1):+.1f} %)")
        print("; ".join(row), flush=True)


if __name__ == "__main__":
    main()
