"""Decoder-side smoothing of unrefined latents' output.

A TAESD decode of a latent straight from the encoder and the quantiser carries high-frequency
noise that is not in the photo: quantisation error the decoder turns into texture. A
Gaussian of sigma 0.8 px on the decoded image removes it: +0.8-0.9 dB PSNR and +2.5-3
SSIMULACRA2 at the same bytes on Kodak at 4-6 bits (docs/BENCHMARKS.md). Latents refined
by encoder effort already decode without that noise, and smoothing them only blurs, so
the encoder asks for smoothing only for effort 0 (and only where the model's family gains
from it: ``LatentFamily.unrefined_smoothing``); the blob records the sigma it chose.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SIGMA_UNITS = 100  # the blob stores sigma in 1/100 px


def smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with mirrored borders; sigma 0 returns ``image``."""
    if sigma <= 0:
        return image
    radius = min(math.ceil(3 * sigma), min(image.shape[-2:]) - 1)
    if radius < 1:
        return image
    taps = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    out = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
