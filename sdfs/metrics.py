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


def _png(pixels: np.ndarray) -> io.BytesIO:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    buffer.seek(0)
    return buffer


METRICS = {"psnr": psnr, "msssim": ms_ssim, "ssimulacra2": ssimulacra2}
