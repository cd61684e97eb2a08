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


def forward(planes):
    """(C, h, w) planes (numpy or torch) -> (C, 4, ceil(h/2), ceil(w/2)): LL, LH, HL, HH. An odd last
    row or column is repeated, which gives its pairs zero detail."""
    _, height, width = planes.shape
    if isinstance(planes, torch.Tensor):
        padded = torch.cat([planes, planes[:, -1:]], 1) if height % 2 else planes
        padded = torch.cat([padded, padded[:, :, -1:]], 2) if width % 2 else padded
        stack = torch.stack
    else:
        padded = np.pad(planes, ((0, 0), (0, height % 2), (0, width % 2)), mode="edge")
        stack = np.stack
    a, b = padded[:, 0::2, 0::2], padded[:, 0::2, 1::2]
    c, d = padded[:, 1::2, 0::2], padded[:, 1::2, 1::2]
    return stack([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], 1) / 2


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


def nest(ll, depth: int = 1):
    """Further Haar levels in place: each 2x2 block of (C, h, w) LL planes (numpy or torch) replaced
    by its Haar coefficients, LL2 at (even, even), LH2 at (even, odd), HL2 at (odd, even), HH2 at
    (odd, odd); an odd last row or column stays as it is. With ``depth`` 2 the LL2 values, a grid two
    cells apart, are nested once more the same way (LL3 four cells apart). The context coder codes
    the four positions of a 2x2 block as four groups, and can split the first of them into four
    more two cells apart, so each sub-band gets its own predictor and spread, and the averages'
    neighbours give the details their context (docs/CODEC.md). ``unnest`` inverts it."""
    out = _block_haar(ll)
    if depth > 1:
        h2, w2 = ll.shape[-2] // 2 * 2, ll.shape[-1] // 2 * 2
        out[..., 0:h2:2, 0:w2:2] = nest(out[..., 0:h2:2, 0:w2:2], depth - 1)
    return out


def unnest(nested, depth: int = 1):
    """The LL planes that ``nest(ll, depth)`` made ``nested`` from (numpy or torch)."""
    out = nested.clone() if isinstance(nested, torch.Tensor) else nested.copy()
    if depth > 1:
        h2, w2 = out.shape[-2] // 2 * 2, out.shape[-1] // 2 * 2
        out[..., 0:h2:2, 0:w2:2] = unnest(out[..., 0:h2:2, 0:w2:2], depth - 1)
    return _block_haar(out)


def _block_haar(ll):
    """Each whole 2x2 block as its Haar coefficients in place; orthonormal and symmetric, so its own inverse."""
    h2, w2 = ll.shape[-2] // 2 * 2, ll.shape[-1] // 2 * 2
    a, b = ll[..., 0:h2:2, 0:w2:2], ll[..., 0:h2:2, 1:w2:2]
    c, d = ll[..., 1:h2:2, 0:w2:2], ll[..., 1:h2:2, 1:w2:2]
    coefficients = ((a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2)
    out = ll.clone() if isinstance(ll, torch.Tensor) else ll.copy()
    for (dy, dx), value in zip(((0, 0), (0, 1), (1, 0), (1, 1)), coefficients):
        out[..., dy:h2:2, dx:w2:2] = value
    return out


def averages_mask(height: int, width: int, depth: int = 1) -> np.ndarray:
    """(height, width) bool: the places of an LL plane nested ``depth`` times that hold averages (the
    deepest LL, and the odd last rows or columns that ``nest`` leaves as they are at each depth),
    where the quantiser's centre applies."""
    mask = np.ones((height, width), bool)
    if depth < 1:
        return mask
    h2, w2 = height // 2 * 2, width // 2 * 2
    mask[:h2, :w2] = False
    mask[0:h2:2, 0:w2:2] = averages_mask(h2 // 2, w2 // 2, depth - 1)
    return mask
