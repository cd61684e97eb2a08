"""Experiment: how sd3's Haar bands are rounded — dead zones and the detail bands' step.

    cd benchmarks && HF_HUB_CACHE=../../shared/hf/hub HF_HUB_OFFLINE=1 ../.venv/bin/python band_rounding.py \
        --images 8 --levels 3,4,6,8 --variants 0:0:1.2,0:0.15:1.2,0:0.3:1.2,0:0:1.4,0:0:1.2:0.1

Each variant is ``LL dead zone : detail dead zone : detail gain[ : detail shrink[ : HH gain[ : nested gain]]]``. A band code whose value is d
steps from its centre is rounded to sign(d) * floor(|d| + 0.5 - theta) (theta 0: plain rounding),
so fewer codes leave the centre, which coder 5's peak makes cheap, for some error; the detail
gain is the detail bands' step over LL's (quant.DETAIL_GAIN). The shrink (default 0) moves every
nonzero detail code that many steps towards zero when the latent is rebuilt (the centroid of a
Laplace-distributed value's rounding cell lies nearer zero than its centre): a decoder-side
change, applied to the encoder's own decodes (its restoration filter fit) too. The HH gain
(default 1) multiplies the diagonal detail band's step on top of the detail gain: a decoder-side
change too, as the format has one detail step. The nested gain (default 1) multiplies the step of
the details nested in LL (quantiser kinds 5 and 6, at up to quant.NESTED_MAX_LEVELS), decoder side as well. Without a
shrink, an HH gain or a nested gain the variants are encoder side only: ordinary blobs that decode as such. For each variant prints mean bpp / PSNR / SSIMULACRA2 at each
level over the first Kodak images (whole, effort 0, restoration filter) and its BD-rate on PSNR
and SSIMULACRA2 against the first variant. docs/BENCHMARKS.md records the outcome.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from restoration_filter import SHARED, scores  # run from benchmarks/

from sdfs.bench import bd_rate
from sdfs.codec import Codec, CodecConfig, ImageData, load_model, quant, read_image

PLAIN_ROUNDED = quant.RotatedHaarQuantizer._rounded
PLAIN_LATENT = quant.haar_latent
PLAIN_STEPS = quant.haar_steps


def hh_steps(hh_gain: float, nested_gain: float = 1.0):
    """``quant.haar_steps`` with the HH band's step ``hh_gain`` times the other details', and the
    details nested in LL at ``nested_gain`` times LL's step (a step map; effort 0 only)."""

    def haar_steps(q, lib, like=None):
        steps, centres = PLAIN_STEPS(q, np)
        steps = steps.copy()
        steps[:, 3] *= hh_gain
        if quant.NEST_DEPTH[q.kind] and nested_gain != 1:
            size = quant.wavelet.band_size(*q.latent_size)
            averages = quant.wavelet.averages_mask(*size, quant.NEST_DEPTH[q.kind])
            steps = np.broadcast_to(steps, (*steps.shape[:2], *size)).copy()
            steps[:, 0] *= np.where(averages, 1.0, nested_gain).astype(np.float32)
        if lib is np:
            return steps, centres
        return torch.from_numpy(steps).to(like), torch.from_numpy(centres).to(like)

    return haar_steps


def shrunk_latent(shrink: float):
    """``quant.haar_latent`` (numpy path) with nonzero detail codes ``shrink`` steps nearer zero."""

    def haar_latent(codes, q, lib, parts=None):
        if lib is not np or not shrink:
            return PLAIN_LATENT(codes, q, lib, parts)
        channels, mid = len(q.table), q.levels // 2
        centred = codes.astype(np.float64) - mid
        detail = centred[channels:]
        centred[channels:] = np.sign(detail) * np.maximum(np.abs(detail) - shrink, 0)
        return PLAIN_LATENT((centred + mid).astype(np.float32), q, lib, parts)

    return haar_latent


def dead_zone_rounded(theta_ll: float, theta_detail: float):
    """``RotatedHaarQuantizer._rounded`` with the band codes rounded towards their centres."""

    def rounded(self, bands: np.ndarray, steps: np.ndarray, size):
        q = PLAIN_ROUNDED(self, bands, steps, size)
        if q is None:
            return None
        band_steps, centres = quant.haar_steps(q, np)  # nested bands: the centre only where LL2 lies
        codes = bands / band_steps - centres
        theta = np.array([theta_ll] + [theta_detail] * 3)[None, :, None, None]
        codes = np.sign(codes) * np.maximum(np.floor(np.abs(codes) + 0.5 - theta), 0)
        q.symbols = (codes.astype(np.int64).transpose(1, 0, 2, 3).reshape(q.symbols.shape)
                     + q.levels // 2).astype(np.int32)
        return q

    return rounded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--first", type=int, default=0, help="skip this many Kodak images")
    parser.add_argument("--levels", default="3,4,6,8")
    parser.add_argument("--variants", default="0:0:1.2,0:0.15:1.2,0:0.3:1.2")
    args = parser.parse_args()
    files = sorted((SHARED / "data" / "kodak").glob("*.png"))[args.first:args.first + args.images]
    images = [ImageData(read_image(f).rgb()) for f in files]
    model = load_model("madebyollin/taesd3", device="cpu")
    print(f"{len(images)} Kodak images from kodim{args.first + 1:02d}, whole, effort 0, madebyollin/taesd3 bands: "
          f"bpp / PSNR / SSIMULACRA2 / encode+decode s")
    curves = {}
    for variant in args.variants.split(","):
        given = [float(v) for v in variant.split(":")]
        theta_ll, theta_detail, gain, shrink, hh_gain, nested_gain = \
            given + [0.0, 0.0, quant.DETAIL_GAIN, 0.0, 1.0, 1.0][len(given):]
        quant.haar_steps = hh_steps(hh_gain, nested_gain)
        quant.haar_latent = shrunk_latent(shrink)
        quant.RotatedHaarQuantizer._rounded = dead_zone_rounded(theta_ll, theta_detail)
        quant.RotatedHaarQuantizer.__init__.__defaults__ = (6, None, 1, gain)
        points = []
        for levels in (int(v) for v in args.levels.split(",")):
            bpp, psnr, ssim2, seconds = scores(Codec(model, CodecConfig(levels=levels)), images)
            points.append((bpp, psnr, ssim2))
            print(f"  {variant:>14}  {levels:2d} levels  {bpp:.3f} / {psnr:.2f} / {ssim2:6.1f} / {seconds:4.0f}",
                  flush=True)
        curves[variant] = points
        reference = curves[args.variants.split(",")[0]]
        print(f"  {variant:>14}  BD-rate against the first: PSNR "
              f"{bd_rate([(b, p) for b, p, _ in reference], [(b, p) for b, p, _ in points], (0, 9)):+.2f} %  "
              f"SSIMULACRA2 {bd_rate([(b, s) for b, _, s in reference], [(b, s) for b, _, s in points], (0, 9)):+.2f} %",
              flush=True)


if __name__ == "__main__":
    main()
