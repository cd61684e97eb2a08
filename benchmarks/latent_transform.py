"""Experiment: a spatial transform of sd3's principal components before quantising them.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python latent_transform.py \
        --images 1,4,8,13 --levels 4,5,6,8,10 --gains 1,1.5,2 --scales 0.8,1,1.25,1.6,2

The rotated quantiser (sd3's until 2026-12-04) rounds each principal component of each latent
cell on its own grid (step ~ 1/span) and the context coder predicts each symbol from coded
neighbours. At under one bit per value that is "quantise, then predict", which at low rates
spends bits on detail a transform coder would drop (reverse water-filling). Here each component
plane is split by one level of the orthonormal 2D Haar transform into LL, LH, HL, HH half-size
bands; the bands are rounded at the component's step times ``--scales`` (and the three detail
bands at ``--gains`` times that), coded by the same context coder as 64 planes, inverted, rotated
back and decoded by TAESD3. Baseline: rounding the components cell by cell (the rotated
quantiser) at ``--levels``. No restoration filter either way, effort 0. With ``--model
madebyollin/taesd`` the same is done to sd1's four channels (no rotation ships for them; the
baseline is the uniform quantiser). Prints each point's mean bpp (whole entropy-coded payload,
side information included), PSNR, SSIMULACRA2, and the BD-rate of each variant against the baseline.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.bench import bd_rate, measure
from sdfs.codec import ImageData, entropy, load_model, read_image
from sdfs.codec.codec import Codec
from sdfs.codec.quant import make_quantizer, uniform_grid
from sdfs.codec.rotations import rotation_for_family, rotation_matrix

METRICS = ("psnr", "ssimulacra2")


def haar(planes: np.ndarray) -> np.ndarray:
    """(C, h, w) with even sides -> (C, 4, h/2, w/2): LL, LH, HL, HH, orthonormal."""
    a, b = planes[:, 0::2, 0::2], planes[:, 0::2, 1::2]
    c, d = planes[:, 1::2, 0::2], planes[:, 1::2, 1::2]
    return np.stack([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], axis=1) / 2


def inverse_haar(bands: np.ndarray) -> np.ndarray:
    ll, lh, hl, hh = (bands[:, k] for k in range(4))
    channels, h, w = ll.shape
    out = np.empty((channels, 2 * h, 2 * w), bands.dtype)
    out[:, 0::2, 0::2] = (ll + lh + hl + hh) / 2
    out[:, 0::2, 1::2] = (ll - lh + hl - hh) / 2
    out[:, 1::2, 0::2] = (ll + lh - hl - hh) / 2
    out[:, 1::2, 1::2] = (ll - lh - hl + hh) / 2
    return out


def transform_coded(components: np.ndarray, steps: np.ndarray, gain: float, band_major: bool
                    ) -> tuple[int, np.ndarray]:
    """Bytes of the coded Haar bands (plus 2 bytes a component for its LL offset) and the components they decode to."""
    bands = haar(components)
    band_steps = steps[:, None] * np.array([1.0, gain, gain, gain])[None, :]
    codes = np.rint(bands / band_steps[:, :, None, None]).astype(np.int64)
    offsets = np.zeros(codes.shape[:2], np.int64)
    offsets[:, 0] = np.rint(codes[:, 0].mean(axis=(1, 2)))  # the detail bands are centred already
    centred = codes - offsets[:, :, None, None]
    order = centred.transpose(1, 0, 2, 3) if band_major else centred
    planes = order.reshape(-1, *centred.shape[2:])
    levels = int(2 * np.abs(planes).max() + 3)
    if levels > entropy.MAX_LEVELS:
        raise ValueError(f"{levels} symbols: step too fine for the coder")
    payload = entropy.encode(planes + levels // 2, levels)
    dequantised = codes * band_steps[:, :, None, None]
    return len(payload) + 2 * len(components), inverse_haar(dequantised.astype(np.float32))


def decoded_scores(model, latent: np.ndarray, image: ImageData) -> dict[str, float]:
    decoded = model.decode(torch.from_numpy(latent)[None])[0]
    rgb = ((decoded + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    return measure(image.pixels, rgb[:image.height, :image.width], METRICS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="madebyollin/taesd3")
    parser.add_argument("--images", default="1,4,8,13", help="Kodak image numbers")
    parser.add_argument("--levels", default="4,5,6,8,10")
    parser.add_argument("--gains", default="1,1.5,2", help="detail bands' step over LL's")
    parser.add_argument("--scales", default="0.8,1,1.25,1.6,2", help="steps over those of --ref-levels")
    parser.add_argument("--ref-levels", type=int, default=6)
    parser.add_argument("--orders", default="component,band")
    args = parser.parse_args()
    files = [SHARED / "data" / "kodak" / f"kodim{int(n):02d}.png" for n in args.images.split(",")]
    images = [ImageData(read_image(f).rgb()) for f in files]
    model = load_model(args.model, device="cpu")
    number = rotation_for_family(model.family.name)  # sd1 and sdxl have none: their channels, as sdfs codes them
    rotation = rotation_matrix(number, model.channels) if number else np.eye(model.channels, dtype=np.float32)
    codec = Codec(model)
    results: dict[str, list[tuple[float, float, float]]] = {}
    for image in images:
        x = codec._to_tensor(image.pixels)
        latent = model.encode(x)[0].numpy()
        pixels = image.width * image.height
        for levels in (int(v) for v in args.levels.split(",")):
            q = make_quantizer("uniform", levels=levels, rotation=number, bands=False).quantize(latent)
            size = len(entropy.encode(q.symbols, q.levels))
            s = decoded_scores(model, q.dequantize(), image)
            results.setdefault(f"cells {levels}L", []).append((size * 8 / pixels, s["psnr"], s["ssimulacra2"]))
        q = make_quantizer("uniform", levels=args.ref_levels, rotation=number, bands=False).quantize(latent)
        steps = uniform_grid(q.table, q.levels)[1].astype(np.float64)
        components = (rotation @ latent.reshape(model.channels, -1)).reshape(latent.shape).astype(np.float64)
        for order in args.orders.split(","):
            for gain in (float(g) for g in args.gains.split(",")):
                for scale in (float(v) for v in args.scales.split(",")):
                    size, coded = transform_coded(components, steps * scale, gain, order == "band")
                    back = (rotation.T @ coded.reshape(model.channels, -1)).reshape(latent.shape)
                    s = decoded_scores(model, back.astype(np.float32), image)
                    key = f"haar {order} gain {gain:g} x{scale:g}"
                    results.setdefault(key, []).append((size * 8 / pixels, s["psnr"], s["ssimulacra2"]))
        print(f"{image.width}x{image.height} done", flush=True)
    report(results)


def report(results: dict[str, list[tuple[float, float, float]]]) -> None:
    means = {key: np.mean(rows, axis=0) for key, rows in results.items()}
    for key, (bpp, psnr, ssim2) in means.items():
        print(f"{key:32s} {bpp:.4f} bpp  {psnr:6.2f} dB  {ssim2:6.1f}")
    baseline = [m for k, m in means.items() if k.startswith("cells")]
    families = sorted({k.rsplit(" x", 1)[0] for k in means if k.startswith("haar")})
    for family in families:
        curve = [m for k, m in means.items() if k.rsplit(" x", 1)[0] == family]
        bd = [bd_rate([(b, p) for b, p, _ in baseline], [(b, p) for b, p, _ in curve], (0.0, 10.0)),
              bd_rate([(b, s) for b, _, s in baseline], [(b, s) for b, _, s in curve], (0.0, 10.0))]
        print(f"{family:32s} BD-rate against cells: PSNR {bd[0]:+.1f} %  SSIMULACRA2 {bd[1]:+.1f} %")


if __name__ == "__main__":
    main()
