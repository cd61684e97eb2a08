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


def nest(ll):
    """A second Haar level in place: each 2x2 block of (C, h, w) LL planes (numpy or torch) replaced
    by its Haar coefficients, LL2 at (even, even), LH2 at (even, odd), HL2 at (odd, even), HH2 at
    (odd, odd); an odd last row or column stays as it is. The block transform is orthonormal and
    symmetric, so ``nest`` is its own inverse. The context coder codes those four positions of a
    plane as four groups, so each sub-band gets its own predictor and spread, and LL2's neighbours
    give the details their context (docs/CODEC.md)."""
    h2, w2 = ll.shape[-2] // 2 * 2, ll.shape[-1] // 2 * 2
    a, b = ll[..., 0:h2:2, 0:w2:2], ll[..., 0:h2:2, 1:w2:2]
    c, d = ll[..., 1:h2:2, 0:w2:2], ll[..., 1:h2:2, 1:w2:2]
    coefficients = ((a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2)
    out = ll.clone() if isinstance(ll, torch.Tensor) else ll.copy()
    for (dy, dx), value in zip(((0, 0), (0, 1), (1, 0), (1, 1)), coefficients):
        out[..., dy:h2:2, dx:w2:2] = value
    return out


def averages_mask(height: int, width: int) -> np.ndarray:
    """(height, width) bool: the places of a nested LL plane that hold averages (LL2, and an odd
    last row or column that ``nest`` leaves as it is), where the quantiser's centre applies."""
    mask = np.ones((height, width), bool)
    h2, w2 = height // 2 * 2, width // 2 * 2
    mask[:h2, :w2] = False
    mask[0:h2:2, 0:w2:2] = True
    return mask
