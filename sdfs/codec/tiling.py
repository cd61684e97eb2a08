"""Running a fully convolutional model over overlapping tiles.

Each tile is processed with ``margin`` extra context on every side and only its core is
kept, so the result matches a whole-image pass up to the model's receptive field (the seam
error is measured in tests/codec/test_tiling.py) while memory stays bounded.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch


def tile_windows(height: int, width: int, tile: int, margin: int) -> Iterator[tuple[slice, slice, slice, slice]]:
    """Yield (core_y, core_x, window_y, window_x) slices covering a height x width grid."""
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            wy0, wx0 = max(0, y0 - margin), max(0, x0 - margin)
            wy1, wx1 = min(height, y1 + margin), min(width, x1 + margin)
            yield slice(y0, y1), slice(x0, x1), slice(wy0, wy1), slice(wx0, wx1)


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: float, tile: int,
              margin: int) -> torch.Tensor:
    """Apply ``fn`` (which maps n input cells to n*scale output cells per side) tile by tile.

    ``tile`` and ``margin`` are in input cells; with scale < 1 they must be multiples of 1/scale.
    """
    height, width = x.shape[-2:]
    if height <= tile + margin and width <= tile + margin:
        return fn(x)
    out = None
    for core_y, core_x, win_y, win_x in tile_windows(height, width, tile, margin):
        result = fn(x[..., win_y, win_x])
        if out is None:
            out_h, out_w = round(height * scale), round(width * scale)
            out = torch.empty(*result.shape[:-2], out_h, out_w, dtype=result.dtype, device=result.device)
        oy = slice(round((core_y.start - win_y.start) * scale), round((core_y.stop - win_y.start) * scale))
        ox = slice(round((core_x.start - win_x.start) * scale), round((core_x.stop - win_x.start) * scale))
        out[..., round(core_y.start * scale):round(core_y.stop * scale),
            round(core_x.start * scale):round(core_x.stop * scale)] = result[..., oy, ox]
    return out
