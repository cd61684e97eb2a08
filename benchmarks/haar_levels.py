"""Experiment: a second Haar level on sd3's LL bands.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python haar_levels.py \
        --images 8 --levels 3,4,6,8 --gains2 1.0,1.2 [--packed]

sdfs codes each principal component of an sd3 latent as one level of Haar bands (LL at the
component's step, the details at 1.2x). This splits each LL band once more (LL2 at the step, its
three details at ``gain2`` times it, the first level's details as before) and codes the 16 LL2
planes and 48 second-level detail planes together (quarter size), the 48 first-level detail planes
apart, with coder 5; bytes are the two payloads. ``--packed`` adds the same two levels packed
in place: each 2x2 block of an LL band replaced by its Haar coefficients, so LL2 and its details
are the four phases of the LL plane that the context coder codes as groups of their own, and
the 64 half-size planes stay one payload, as today's format has them (LL2's centre subtracted at
its positions only). One Haar level is coded the same way (the 64
half-size planes in one payload) for the reference, so both sides skip the blob's header and the
restoration filter. Images whose latent sides are not multiples of 4 are skipped. Prints mean bpp,
PSNR and SSIMULACRA2 per level and the BD-rate against one level. docs/BENCHMARKS.md records it.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from restoration_filter import SHARED  # run from benchmarks/

from sdfs.bench import bd_rate, measure
from sdfs.codec import Codec, ImageData, entropy, load_model, quant, read_image, wavelet


def rounded(values: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, their values): ``values`` (C, B, h, w) rounded at per-(C, B) ``steps``."""
    codes = np.rint(values / steps[:, :, None, None])
    return codes.astype(np.int64), codes * steps[:, :, None, None]


def payload_bytes(codes: np.ndarray) -> int:
    planes = codes.transpose(1, 0, 2, 3).reshape(-1, *codes.shape[2:])  # band-major, as sdfs codes them
    planes = planes - np.rint(planes.mean(axis=(1, 2), keepdims=True)).astype(np.int64)
    half = int(np.abs(planes).max())
    return len(entropy.encode((planes + half).astype(np.int32), 2 * half + 1))


def block_haar(ll: np.ndarray) -> np.ndarray:
    """Each 2x2 block of (C, h, w) planes (h, w even) as its Haar coefficients in place: LL2 at
    (even, even), LH2 (even, odd), HL2 (odd, even), HH2 (odd, odd). Its own inverse."""
    sub = wavelet.forward(ll)
    out = np.empty_like(ll)
    out[:, 0::2, 0::2], out[:, 0::2, 1::2], out[:, 1::2, 0::2], out[:, 1::2, 1::2] = (sub[:, k] for k in range(4))
    return out


def unblock_haar(packed: np.ndarray) -> np.ndarray:
    sub = np.stack([packed[:, 0::2, 0::2], packed[:, 0::2, 1::2], packed[:, 1::2, 0::2], packed[:, 1::2, 1::2]], 1)
    return wavelet.inverse(sub, *packed.shape[1:])


def packed_payload_bytes(ll_codes: np.ndarray, detail_codes: np.ndarray) -> int:
    """Today's layout: 64 half-size planes in one payload; LL2's centre only at its own positions."""
    ll = ll_codes[:, 0].copy()
    ll[:, 0::2, 0::2] -= np.rint(ll[:, 0::2, 0::2].mean(axis=(1, 2), keepdims=True)).astype(np.int64)
    planes = np.concatenate([ll[:, None], detail_codes], axis=1).transpose(1, 0, 2, 3).reshape(-1, *ll.shape[1:])
    half = int(np.abs(planes).max())
    return len(entropy.encode((planes + half).astype(np.int32), 2 * half + 1))


def coded(components: np.ndarray, steps: np.ndarray, two_levels: bool, gain2: float,
          packed: bool = False) -> tuple[int, np.ndarray]:
    """(bytes, the components rebuilt) for one or two Haar levels."""
    channels, height, width = components.shape
    bands = wavelet.forward(components)
    detail_codes, detail = rounded(bands[:, 1:], np.repeat(steps[:, None] * quant.DETAIL_GAIN, 3, axis=1))
    if packed:
        ll_codes, ll = rounded(block_haar(bands[:, 0])[:, None], steps[:, None])
        ll = unblock_haar(ll[:, 0])[:, None]
        size = packed_payload_bytes(ll_codes, detail_codes)
        return size, wavelet.inverse(np.concatenate([ll, detail], axis=1), height, width)
    if not two_levels:
        ll_codes, ll = rounded(bands[:, :1], steps[:, None])
        size = payload_bytes(np.concatenate([ll_codes, detail_codes], axis=1))
        return size, wavelet.inverse(np.concatenate([ll, detail], axis=1), height, width)
    sub = wavelet.forward(bands[:, 0])
    sub_steps = np.concatenate([steps[:, None], np.repeat(steps[:, None] * gain2, 3, axis=1)], axis=1)
    sub_codes, sub_values = rounded(sub, sub_steps)
    size = payload_bytes(sub_codes) + payload_bytes(detail_codes)
    ll = wavelet.inverse(sub_values, *bands.shape[2:])[:, None]
    return size, wavelet.inverse(np.concatenate([ll, detail], axis=1), height, width)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--levels", default="3,4,6,8")
    parser.add_argument("--gains2", default="1.0,1.2")
    parser.add_argument("--packed", action="store_true", help="also two levels packed in today's layout")
    args = parser.parse_args()
    model = load_model("madebyollin/taesd3", device="cpu")
    codec = Codec(model)
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[:args.images]
    variants = [("one level", False, 0.0)] + [(f"two, gain2 {g}", True, float(g)) for g in args.gains2.split(",") if g]
    if args.packed:
        variants.append(("two, packed", True, 1.0))
    rows = {(name, levels): [] for name, _, _ in variants for levels in args.levels.split(",")}
    for path in files:
        image = ImageData(read_image(path).rgb())
        x = Codec._to_tensor(image.rgb())
        latent = codec._encode_tensors([x])[0]
        if latent.shape[1] % 4 or latent.shape[2] % 4:
            print(f"skipped {path.name}: latent {latent.shape[1:]}")
            continue
        channels = latent.shape[0]
        matrix = quant.rotation_matrix(1, channels)
        components = (matrix @ latent.reshape(channels, -1)).reshape(latent.shape).astype(np.float64)
        spans = np.maximum(components.max(axis=(1, 2)) - components.min(axis=(1, 2)), 1e-3)
        for levels in args.levels.split(","):
            steps = quant.RotatedHaarQuantizer(levels=int(levels)).component_steps(latent, spans)
            for name, two, gain2 in variants:
                size, rebuilt = coded(components, steps, two, gain2, name == "two, packed")
                z = (matrix.T @ rebuilt.reshape(channels, -1)).reshape(latent.shape).astype(np.float32)
                picture = model.decode(torch.from_numpy(z)[None])[0]
                pixels = ((picture.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
                scores = measure(image.rgb(), pixels, ("psnr", "ssimulacra2"))
                rows[name, levels].append((8 * size / (image.width * image.height), scores["psnr"],
                                           scores["ssimulacra2"]))
        print(f"{path.name} done", flush=True)
    print(f"{len(rows[variants[0][0], args.levels.split(',')[0]])} Kodak images, whole, madebyollin/taesd3, "
          f"no restoration filter: bpp / PSNR / SSIMULACRA2")
    reference = None
    for name, _, _ in variants:
        points = [tuple(np.mean(rows[name, levels], axis=0)) for levels in args.levels.split(",")]
        for levels, (bpp, psnr, ssim2) in zip(args.levels.split(","), points):
            print(f"  {name:>16}  {levels:>2} levels  {bpp:.3f} / {psnr:.2f} / {ssim2:6.1f}")
        reference = reference or points
        print(f"  {name:>16}  BD-rate against one level: PSNR "
              f"{bd_rate([(b, p) for b, p, _ in reference], [(b, p) for b, p, _ in points], (0, 9)):+.2f} %  "
              f"SSIMULACRA2 {bd_rate([(b, s) for b, _, s in reference], [(b, s) for b, _, s in points], (0, 9)):+.2f} %")


if __name__ == "__main__":
    main()
