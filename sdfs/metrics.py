"""Image quality metrics on 8-bit RGB arrays: PSNR, MS-SSIM and SSIMULACRA2 (higher is better)."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / mse) if mse else 100.0


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(a.shape[:2]) <= 160:  # five scales of an 11-pixel window need 161 pixels
        return float("nan")
    x, y = (torch.from_numpy(np.array(v, dtype=np.float64)).permute(2, 0, 1)[None] for v in (a, b))
    return float(_ms_ssim(x, y, data_range=255.0))


def ssimulacra2(a: np.ndarray, b: np.ndarray) -> float:
    from ssimulacra2 import compute_ssimulacra2

    if min(a.shape[:2]) < 8:
        return float("nan")
    if np.array_equal(a, b):
        return 100.0
    return float(compute_ssimulacra2(_png(a), _png(b)))


class Ssimulacra2Reference:
    """SSIMULACRA2 against one fixed original, its half of the work done once.

    The same steps as ``ssimulacra2.compute_ssimulacra2`` (the package's own functions, in its
    order), minus the original's colour conversion, pyramid and two of the five blurs per scale,
    which do not change between the guard's probes. ``tests/test_guard.py`` holds it equal to
    the package's function.
    """

    def __init__(self, original: np.ndarray) -> None:
        from ssimulacra2 import ssimulacra2 as s2

        self._s2 = s2
        self.shape = original.shape
        self.scales: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # xyb, mu, sigma_sq per scale
        linear = s2.srgb_to_linear(np.asarray(original, dtype=np.float64))
        for scale in range(s2.kNumScales):
            xyb = s2.make_positive_xyb(s2.linear_rgb_to_xyb(linear))
            if xyb.shape[0] < 8 or xyb.shape[1] < 8:
                break
            self.scales.append((xyb, s2.blur_image(xyb), s2.blur_image(xyb * xyb)))
            if scale < s2.kNumScales - 1:
                linear = s2.downsample(linear, 2, 2)

    def score(self, distorted: np.ndarray) -> float:
        s2 = self._s2
        if distorted.shape != self.shape:
            raise ValueError(f"image is {distorted.shape}, the reference {self.shape}")
        if not self.scales:
            return float("nan")
        linear = s2.srgb_to_linear(np.asarray(distorted, dtype=np.float64))
        result = s2.Msssim()
        for scale, (xyb1, mu1, sigma1_sq) in enumerate(self.scales):
            xyb2 = s2.make_positive_xyb(s2.linear_rgb_to_xyb(linear))
            mu2 = s2.blur_image(xyb2)
            data = s2.MsssimScale()
            data.avg_ssim = s2.ssim_map(mu1, mu2, sigma1_sq, s2.blur_image(xyb2 * xyb2), s2.blur_image(xyb1 * xyb2))
            data.avg_edgediff = s2.edge_diff_map(xyb1, mu1, xyb2, mu2)
            result.scales.append(data)
            if scale < len(self.scales) - 1:
                linear = s2.downsample(linear, 2, 2)
        return float(result.score())


def _png(pixels: np.ndarray) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    buffer.seek(0)
    return buffer


METRICS = {"psnr": psnr, "msssim": ms_ssim, "ssimulacra2": ssimulacra2}


def scorer(metric: str, original: np.ndarray):
    """A function of a distorted image giving ``metric`` against ``original``, which it may preprocess."""
    if metric == "ssimulacra2":
        reference = Ssimulacra2Reference(original)
        return lambda distorted: 100.0 if np.array_equal(original, distorted) else reference.score(distorted)
    function = METRICS[metric]
    return lambda distorted: function(original, distorted)
