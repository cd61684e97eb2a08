"""Encoder effort: refine the quantised latent through the decoder that will read it.

Analysis by synthesis. For the uniform quantiser the continuous code values are
optimised with Adam under straight-through rounding, so every forward pass sees the
latent exactly as it will be stored; for the palette quantiser the palette entries are
optimised with the dithered indices held fixed (that is exactly differentiable). The
best quantised state seen is kept, so more effort never makes the result worse by the
loss. Runs are deterministic for a given seed on a given device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .quant import PALETTE, UNIFORM, QuantizedLatent, straight_through_round, uniform_grid
from .tiling import tile_windows

EFFORT_STEPS = {0: 0, 1: 10, 2: 30, 3: 60, 4: 150}
OPT_TILE = 96  # latent cells per side optimised in one piece (768 px)
OPT_MARGIN = 4


@dataclass
class RefineReport:
    steps: int
    loss_before: float
    loss_after: float
    seconds: float


def steps_for_effort(effort: int) -> int:
    if effort not in EFFORT_STEPS:
        raise ValueError(f"effort must be one of {sorted(EFFORT_STEPS)}, not {effort}")
    return EFFORT_STEPS[effort]


def refine(q: QuantizedLatent, latent: np.ndarray, target: torch.Tensor, weight: torch.Tensor | None,
           decoder: Callable[[torch.Tensor], torch.Tensor], factor: int, steps: int, seed: int = 0,
           lr: float | None = None) -> tuple[QuantizedLatent, RefineReport]:
    """Return a better QuantizedLatent for ``target`` (1, 3, H, W in [-1, 1], H, W padded).

    ``latent`` is the encoder's float latent (C, h, w); ``weight`` (1, 1, H, W) weights the
    squared error per pixel (alpha), or None.
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    if steps <= 0:
        return q, RefineReport(0, float("nan"), float("nan"), 0.0)
    if q.kind == UNIFORM:
        q2, before, after = _refine_uniform_tiled(q, latent, target, weight, decoder, factor, steps, lr or 0.15)
    elif q.kind == PALETTE:
        q2, before, after = _refine_palette(q, target, weight, decoder, steps, lr or 0.01)
    else:
        raise ValueError(f"cannot refine quantiser kind {q.kind}")
    return q2, RefineReport(steps, before, after, time.perf_counter() - start)


def _weighted_mse(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    err = (image - target) ** 2
    if weight is None:
        return err.mean()
    return (err * weight).sum() / (weight.sum() * image.shape[1]).clamp_min(1e-6)


def _refine_uniform_tiled(q, latent, target, weight, decoder, factor, steps, lr):
    _, height, width = q.symbols.shape
    low, step = (torch.from_numpy(a) for a in uniform_grid(q.table, q.levels))
    codes = torch.from_numpy((latent - low.numpy()[:, None, None]) / step.numpy()[:, None, None]).float()
    symbols = q.symbols.copy()
    before = after = 0.0
    for core_y, core_x, win_y, win_x in tile_windows(height, width, OPT_TILE, OPT_MARGIN):
        px_y = slice(win_y.start * factor, win_y.stop * factor)
        px_x = slice(win_x.start * factor, win_x.stop * factor)
        w = None if weight is None else weight[..., px_y, px_x]
        best, b0, b1 = _refine_codes(codes[:, win_y, win_x], low, step, q.levels, target[..., px_y, px_x], w,
                                     decoder, steps, lr)
        ry = slice(core_y.start - win_y.start, core_y.stop - win_y.start)
        rx = slice(core_x.start - win_x.start, core_x.stop - win_x.start)
        symbols[:, core_y, core_x] = best[:, ry, rx]
        before, after = before + b0, after + b1
    return QuantizedLatent(UNIFORM, q.levels, symbols, q.table), before, after


def _refine_codes(codes, low, step, levels, target, weight, decoder, steps, lr):
    device = target.device
    low, step = low.to(device), step.to(device)
    variable = codes.to(device).clamp(0, levels - 1).requires_grad_(True)

    def quantised():
        return straight_through_round(variable.clamp(0, levels - 1))

    def loss():
        latent = low[:, None, None] + quantised() * step[:, None, None]
        return _weighted_mse(decoder(latent[None]), target, weight)

    def snapshot():
        return quantised().detach().cpu().numpy().astype(np.int32)

    return _minimise(variable, lr, steps, loss, snapshot)


def _refine_palette(q, target, weight, decoder, steps, lr):
    indices = torch.from_numpy(q.symbols[0].astype(np.int64)).to(target.device)
    palette = torch.from_numpy(q.table.astype(np.float32)).to(target.device).requires_grad_(True)

    def loss():
        stored = palette + (palette.half().float() - palette).detach()  # what float16 storage will keep
        return _weighted_mse(decoder(stored[indices].permute(2, 0, 1)[None]), target, weight)

    def snapshot():
        return palette.detach().cpu().numpy().astype(np.float16)

    best_table, first, best = _minimise(palette, lr, steps, loss, snapshot)
    return QuantizedLatent(PALETTE, q.levels, q.symbols, best_table), first, best


def _minimise(variable: torch.Tensor, lr: float, steps: int, loss_fn, snapshot):
    """Adam on ``variable``; returns (snapshot of the best state, first loss, best loss)."""
    optimizer = torch.optim.Adam([variable], lr=lr)
    best_loss, best_state, first_loss = float("inf"), None, None
    for _ in range(steps + 1):
        loss = loss_fn()
        value = float(loss.detach())
        first_loss = value if first_loss is None else first_loss
        if value < best_loss:
            best_loss, best_state = value, snapshot()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return best_state, first_loss, best_loss
