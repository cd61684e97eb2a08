"""Encoder effort: refine the quantised latent through the decoder that will read it.

Analysis by synthesis. For the uniform quantiser the continuous code values are
optimised with Adam under straight-through rounding, so every forward pass sees the
latent exactly as it will be stored; for the palette quantiser the palette entries are
optimised with the dithered indices held fixed (that is exactly differentiable). The
best quantised state seen is kept, so more effort never makes the result worse by the
loss. Runs are deterministic for a given seed on a given device.

The objective is squared error (weighted by alpha where there is one) plus
``structure_weight`` times (1 - MS-SSIM): the structural term keeps texture and edges that
squared error alone trades for blur, lifting SSIMULACRA2 by 3-5 points at under 0.1 dB of
PSNR on Kodak crops (docs/BENCHMARKS.md). ``rate_weight`` adds, for the uniform quantiser, that
weight times an estimate of the context coder's bits per pixel (``estimated_bits``), the same
trade the rate-aware encoders were trained with: without it refinement spends 10-16 % more bytes
on sd3 latents and loses at equal bytes; with it the size stays put and the gain is kept.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim, ssim

from .quant import (
    HAAR_KINDS,
    NEST_DEPTH,
    PALETTE,
    ROTATED,
    UNIFORM,
    QuantizedLatent,
    haar_bands,
    haar_latent,
    haar_parts,
    haar_steps,
    straight_through_round,
    uniform_grid,
)
from .rotations import rotation_matrix
from .tiling import tile_windows

EFFORT_STEPS = {0: 0, 1: 10, 2: 30, 3: 60, 4: 150}
OPT_TILE = 96  # latent cells per side optimised in one piece (768 px)
OPT_MARGIN = 4
STRUCTURE_WEIGHT = 0.1
RATE_WEIGHT = 0.03
# the rotated quantiser's refinement step against the channels': larger ones undo the start on sd3
# (Kodak crops, 5 levels: x1 gains nothing, x1/8 +0.41 dB and +5.8 SSIMULACRA2 for 0.6 % more bytes)
ROTATED_LR_SCALE = 0.125
SSIM_WINDOW = 7
# Adam's step over a refinement: "cosine" decays it to zero (shipped), "constant" keeps it (before
# 2026-11-27; benchmarks/refine_schedule.py compares the two)
STEP_DECAY = "cosine"
# the cosine spans at least this many steps: effort 1's 10 are still gaining when they stop, and a
# step decayed to zero within them lost 0.1 dB on whole Kodak photos
DECAY_MIN_STEPS = 30


@dataclass
class Objective:
    """What refinement minimises, besides the (alpha-weighted) squared error."""

    structure_weight: float = STRUCTURE_WEIGHT  # times (1 - MS-SSIM)
    rate_weight: float = RATE_WEIGHT  # times estimated bits per pixel (uniform quantiser only)

    def distortion(self, image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        loss = _weighted_mse(image, target, weight)
        if self.structure_weight:
            loss = loss + self.structure_weight * _structure_loss(image, target)
        return loss


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
           lr: float | None = None, objective: Objective | None = None,
           between_steps: Callable[[], None] | None = None) -> tuple[QuantizedLatent, RefineReport]:
    """Return a better QuantizedLatent for ``target`` (1, 3, H, W in [-1, 1], H, W padded).

    ``latent`` is the encoder's float latent (C, h, w); ``weight`` (1, 1, H, W) weights the
    squared error per pixel (alpha), or None; ``objective`` adds the other terms (default: Objective()).
    ``between_steps`` is called after every optimiser step.
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    objective = objective or Objective()
    if steps <= 0:
        return q, RefineReport(0, float("nan"), float("nan"), 0.0)
    if q.kind in (UNIFORM, ROTATED, *HAAR_KINDS):
        lr = lr or uniform_lr(q.requested_levels) * (ROTATED_LR_SCALE if q.kind != UNIFORM else 1.0)
        tiled = _refine_haar_tiled if q.kind in HAAR_KINDS else _refine_uniform_tiled
        q2, before, after = tiled(q, latent, target, weight, decoder, factor, steps, lr, objective, between_steps)
    elif q.kind == PALETTE:
        q2, before, after = _refine_palette(q, target, weight, decoder, steps, lr or 0.01, objective,
                                            between_steps)
    else:
        raise ValueError(f"cannot refine quantiser kind {q.kind}")
    return q2, RefineReport(steps, before, after, time.perf_counter() - start)


def _weighted_mse(image: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    err = (image - target) ** 2
    if weight is None:
        return err.mean()
    return (err * weight).sum() / (weight.sum() * image.shape[1]).clamp_min(1e-6)


def _structure_loss(image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM on [0, 1] pixels; single-scale SSIM where the image is too small for five scales.

    Every window refined is at least 5 latent cells (40 px) a side, wider than SSIM's window.
    """
    x, y = (image.clamp(-1, 1) + 1) / 2, (target + 1) / 2
    if min(x.shape[-2:]) > (SSIM_WINDOW - 1) * 16:
        return 1 - ms_ssim(x, y, data_range=1.0, win_size=SSIM_WINDOW)
    return 1 - ssim(x, y, data_range=1.0, win_size=SSIM_WINDOW)


def uniform_lr(levels: int) -> float:
    """Adam's step in quantiser steps: 0.15 at 16 levels, the same distance in latent units at others.

    A fixed step in code units moves the latent half as far per bit added, so finer grids were
    under-refined (6 bits, effort 1: 28.2 dB at 0.15 against 29.0 dB at 0.6 on Kodak crops).
    """
    return 0.15 * levels / 16


def neighbour_mean(codes: torch.Tensor) -> torch.Tensor:
    """The mean of each value's four neighbours in its (C, h, w) plane, edges replicated."""
    padded = F.pad(codes[None], (1, 1, 1, 1), mode="replicate")[0]
    return (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]) / 4


def estimated_bits(codes: torch.Tensor) -> torch.Tensor:
    """Differentiable estimate of the context coder's bits for (planes, h, w) codes in quantiser steps.

    Each code's distance from the mean of its four neighbours is coded against a discrete Laplace
    distribution whose scale is that plane's mean distance: the coder's model, less its other-plane
    context and its local scales. It tracks real sizes at 55-87 %; the rest is side information.
    """
    distance = (codes - neighbour_mean(codes)).abs()
    scale = distance.mean(dim=(1, 2), keepdim=True).clamp_min(0.02)
    # the probability of the unit bin around each distance, in two pieces that stay finite
    near = 1 - torch.exp(-0.5 / scale) * torch.cosh(distance.clamp(max=0.5) / scale)
    far = torch.exp(-(distance.clamp(min=0.5) - 0.5) / scale) * 0.5 * (1 - torch.exp(-1 / scale))
    return -torch.log2(torch.where(distance < 0.5, near, far).clamp_min(1e-9)).sum()


def band_bits(codes: torch.Tensor, channels: int, depth: int) -> torch.Tensor:
    """``estimated_bits`` of rotated Haar codes (band-major planes, the ``channels`` LL planes first)
    whose LL planes hold ``depth`` nested Haar levels. Each nested sub-band, a phase of LL's grid and
    one of the coder's groups, is estimated on its own grid: in one plane the averages and the
    details would each be pulled towards the other's values."""
    if not depth:
        return estimated_bits(codes)
    return estimated_bits(codes[channels:]) + sum(estimated_bits(part) for part in nested_subbands(codes[:channels], depth)
                                                  if part.numel())


def nested_subbands(ll: torch.Tensor, depth: int) -> list[torch.Tensor]:
    """The (planes, h', w') grids of LL planes nested ``depth`` times (``wavelet.nest``): each level's three
    details, then the deepest averages (an odd last row or column goes with its phase)."""
    parts = [ll[:, 0::2, 1::2], ll[:, 1::2, 0::2], ll[:, 1::2, 1::2]]
    rest = ll[:, 0::2, 0::2]
    return parts + (nested_subbands(rest, depth - 1) if depth > 1 else [rest])


def _refine_uniform_tiled(q, latent, target, weight, decoder, factor, steps, lr, objective, between_steps):
    """Codes are the channels' values in steps, or for a rotated quantiser the components'."""
    channels = q.symbols.shape[0]
    low, step = (torch.from_numpy(a) for a in uniform_grid(q.table, q.levels))
    rotation = None
    if q.kind == ROTATED:
        rotation = torch.from_numpy(rotation_matrix(q.rotation, channels).copy())
        latent = (rotation.numpy() @ latent.reshape(channels, -1)).reshape(latent.shape)
    codes = torch.from_numpy((latent - low.numpy()[:, None, None]) / step.numpy()[:, None, None]).float()
    device_low, device_step = low.to(target.device)[:, None, None], step.to(target.device)[:, None, None]
    device_rotation = None if rotation is None else rotation.to(target.device)

    def latent_of(codes):
        values = device_low + codes * device_step
        if device_rotation is None:
            return values
        return torch.einsum("kc,khw->chw", device_rotation, values)  # components back to channels

    def synthesis(window_y, window_x):
        return latent_of, window_y, window_x

    # Adam moves every variable alike: in units of the steps' geometric mean, a rotated quantiser's
    # fine and coarse components move the same latent distance
    unit = step / torch.exp(torch.log(step).mean()) if rotation is not None else torch.ones_like(step)
    return _refine_tiles(q, codes, unit, synthesis, 1, target, weight, decoder, factor, steps, lr, objective,
                         between_steps)


def _refine_haar_tiled(q, latent, target, weight, decoder, factor, steps, lr, objective, between_steps):
    """Codes are the components' Haar bands in their steps (band-major planes). The transform is
    local, so a window of bands is a window of latent cells twice its size, refined as the channels' are."""
    channels = len(q.table)
    height, width = q.latent_size
    components = (rotation_matrix(q.rotation, channels) @ latent.reshape(channels, -1)).reshape(latent.shape)
    band_steps, centres = haar_steps(q, np)
    codes = haar_bands(components.astype(np.float64), q.kind) / band_steps - centres + q.levels // 2
    codes = torch.from_numpy(codes.transpose(1, 0, 2, 3).reshape(q.symbols.shape)).float()
    plane_steps = torch.from_numpy(band_steps[:, :, 0, 0].T.reshape(-1).copy())
    parts = haar_parts(q, torch, torch.empty(0, device=target.device))

    def synthesis(window_y, window_x):
        rows = slice(2 * window_y.start, min(2 * window_y.stop, height))
        cols = slice(2 * window_x.start, min(2 * window_x.stop, width))
        part = dataclasses.replace(q, latent_size=(rows.stop - rows.start, cols.stop - cols.start))
        # nested bands' centres are a map (windows start at multiples of 2^depth band cells, so LL's
        # nested blocks stay whole)
        centre = parts[1][..., window_y, window_x] if NEST_DEPTH[q.kind] else parts[1]
        return (lambda codes: haar_latent(codes, part, torch, (parts[0], centre, parts[2]))), rows, cols

    unit = plane_steps / torch.exp(torch.log(plane_steps).mean())
    depth = NEST_DEPTH[q.kind]
    return _refine_tiles(q, codes, unit, synthesis, 2, target, weight, decoder, factor, steps, lr, objective,
                         between_steps, 2 ** depth, lambda c: band_bits(c, channels, depth))


def _refine_tiles(q, codes, unit, synthesis, cells, target, weight, decoder, factor, steps, lr, objective,
                  between_steps, align=1, bits_of=estimated_bits):
    """Refine (planes, h, w) ``codes`` window by window; ``synthesis(window_y, window_x)`` gives the
    function from a window's codes to its latent and the latent cells that latent covers (``cells``
    latent cells a code; windows start at multiples of ``align`` codes); ``bits_of`` estimates a
    window's bits for the rate term. Returns (refined q, loss before, loss after)."""
    _, height, width = q.symbols.shape
    symbols = q.symbols.copy()
    before = after = 0.0
    margin = -(-max(1, OPT_MARGIN // cells) // align) * align
    for core_y, core_x, win_y, win_x in tile_windows(height, width, OPT_TILE // cells, margin):
        latent_of, rows, cols = synthesis(win_y, win_x)
        px_y = slice(rows.start * factor, rows.stop * factor)
        px_x = slice(cols.start * factor, cols.stop * factor)
        w = None if weight is None else weight[..., px_y, px_x]
        best, b0, b1 = _refine_codes(codes[:, win_y, win_x], unit, latent_of, q.levels, target[..., px_y, px_x],
                                     w, decoder, steps, lr, objective, between_steps, bits_of)
        ry = slice(core_y.start - win_y.start, core_y.stop - win_y.start)
        rx = slice(core_x.start - win_x.start, core_x.stop - win_x.start)
        symbols[:, core_y, core_x] = best[:, ry, rx]
        before, after = before + b0, after + b1
    return dataclasses.replace(q, symbols=symbols), before, after


def _refine_codes(codes, unit, latent_of, levels, target, weight, decoder, steps, lr, objective, between_steps,
                  bits_of=estimated_bits):
    device = target.device
    unit = unit.to(device)[:, None, None]
    variable = (codes.to(device).clamp(0, levels - 1) * unit).requires_grad_(True)

    def quantised():
        return straight_through_round((variable / unit).clamp(0, levels - 1))

    def loss():
        codes = quantised()
        distortion = objective.distortion(decoder(latent_of(codes)[None]), target, weight)
        if not objective.rate_weight:
            return distortion
        return distortion + objective.rate_weight * bits_of(codes) / (target.shape[-2] * target.shape[-1])

    def snapshot():
        return quantised().detach().cpu().numpy().astype(np.int32)

    return _minimise(variable, lr, steps, loss, snapshot, between_steps)


def _refine_palette(q, target, weight, decoder, steps, lr, objective, between_steps):
    indices = torch.from_numpy(q.symbols[0].astype(np.int64)).to(target.device)
    palette = torch.from_numpy(q.table.astype(np.float32)).to(target.device).requires_grad_(True)

    def loss():
        stored = palette + (palette.half().float() - palette).detach()  # what float16 storage will keep
        return objective.distortion(decoder(stored[indices].permute(2, 0, 1)[None]), target, weight)

    def snapshot():
        return palette.detach().cpu().numpy().astype(np.float16)

    best_table, first, best = _minimise(palette, lr, steps, loss, snapshot, between_steps)
    return QuantizedLatent(PALETTE, q.levels, q.symbols, best_table), first, best


def _minimise(variable: torch.Tensor, lr: float, steps: int, loss_fn, snapshot, between_steps=None):
    """Adam on ``variable``, its step decayed on a cosine that reaches zero at ``DECAY_MIN_STEPS`` or
    the last step, whichever is later; returns (snapshot of the best state, first loss, best loss).

    The decay is what makes more effort pay on sd3: at a constant step the rounded latent's loss
    bottomed out after 10-30 steps and climbed after, so efforts 2-4 kept about the same latent
    (+0.38 dB and +4.3 SSIMULACRA2 at effort 3 on Kodak crops with the decay; sd1 +0.1 dB, +1.6).
    """
    optimizer = torch.optim.Adam([variable], lr=lr)
    schedule = None
    if STEP_DECAY == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, DECAY_MIN_STEPS))
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
        if schedule:
            schedule.step()
        if between_steps:
            between_steps()
    return best_state, first_loss, best_loss
