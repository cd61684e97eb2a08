"""One level of the orthonormal 2D Haar transform of latent planes, and its inverse.

The rotated Haar quantiser (``quant.RotatedHaarQuantizer``) codes sd3's principal components as
these bands: a smooth component's detail bands are mostly near zero, and rounding them at a
coarser step than the averages spends the bits where the decoder needs them (reverse
water-filling), which quantising every cell on its own grid cannot do (docs/BENCHMARKS.md).
Works on numpy arrays and torch tensors alike (refinement differentiates through the inverse).
"""

from __future__ import annotations

import numpy as np
import torch

BANDS = 4  # LL, LH, HL, HH


def band_size(height: int, width: int) -> tuple[int, int]:
    """The bands' size for a (height, width) plane: odd sides are padded by one repeated row/column."""
    return (height + 1) // 2, (width + 1) // 2


def forward(planes: np.ndarray) -> np.ndarray:
    """(C, h, w) -> (C, 4, ceil(h/2), ceil(w/2)): LL, LH, HL, HH. An odd last row or column is repeated,
    which gives its pairs zero detail."""
    _, height, width = planes.shape
    padded = np.pad(planes, ((0, 0), (0, height % 2), (0, width % 2)), mode="edge")
    a, b = padded[:, 0::2, 0::2], padded[:, 0::2, 1::2]
    c, d = padded[:, 1::2, 0::2], padded[:, 1::2, 1::2]
    return np.stack([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], axis=1) / 2


def inverse(bands, height: int, width: int):
    """(C, 4, bh, bw) bands (numpy or torch) -> the (C, height, width) planes they hold."""
    ll, lh, hl, hh = (bands[:, k] for k in range(BANDS))
    rows = [((ll + lh + hl + hh) / 2, (ll - lh + hl - hh) / 2),
            ((ll + lh - hl - hh) / 2, (ll - lh - hl + hh) / 2)]
    if isinstance(bands, torch.Tensor):
        pairs = [torch.stack(row, dim=-1).flatten(-2) for row in rows]  # interleave columns
        out = torch.stack(pairs, dim=-2).flatten(-3, -2)  # interleave rows
    else:
        pairs = [np.stack(row, axis=-1).reshape(*ll.shape[:-1], -1) for row in rows]
        out = np.stack(pairs, axis=-2).reshape(ll.shape[0], -1, pairs[0].shape[-1])
    return out[:, :height, :width]
