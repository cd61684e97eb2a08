"""A restoration filter fitted per image by the encoder and applied by the decoder.

The tiny decoders' output of a quantised latent is off in ways the encoder can measure, since
it has the photo: each channel's gain and offset drift, colours bleed between channels, and
quantisation error comes out as high-frequency texture that is not in the photo. Two filters,
both fitted by least squares to the original:

- small: a symmetric 3x3 filter per channel (weights for the pixel, the sum of its four edge
  neighbours and the sum of its four corners, plus an offset), 24 bytes;
- large: a symmetric 5x5 filter that reads every channel for each output channel (six rings of
  neighbours per input channel, plus an offset), 114 bytes for RGB. It gains +0.07-0.12 dB PSNR
  and +0.5-1 SSIMULACRA2 over the small one on whole Kodak photos at effort 0 and 2, for
  0.3-1.7 % more bytes (docs/BENCHMARKS.md).

The encoder keeps the small filter where it lowers the error, and takes the large one only
where its gain over the small one is worth its extra bytes at AVIF's exchange rate of quality
for bytes. The blob's filter length says which it is; old blobs carry the small one or none.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

UNITS = 4096  # coefficients are stored as int16 in 1/UNITS
FIT_SAMPLES = 1 << 20  # pixels per channel the fit looks at (a strided grid on larger images)
APPLY_ROWS = 256  # the filters run on strips of this many rows, to bound their memory
DB_PER_PERCENT_OF_BYTES = 0.03  # AVIF on Kodak: +35 % bytes (0.176 -> 0.238 bpp) buys +1.09 dB

# symmetric rings of neighbours: each weight multiplies the sum over its ring
RINGS_3X3 = ([(0, 0)], [(0, 1), (0, -1), (1, 0), (-1, 0)], [(1, 1), (1, -1), (-1, 1), (-1, -1)])
RINGS_5X5 = RINGS_3X3 + ([(0, 2), (0, -2), (2, 0), (-2, 0)],
                           [(1, 2), (1, -2), (-1, 2), (-1, -2), (2, 1), (2, -1), (-2, 1), (-2, -1)],
                           [(2, 2), (2, -2), (-2, 2), (-2, -2)])
SMALL_TAPS = len(RINGS_3X3) + 1  # per channel, its own channel only
IDENTITY = (UNITS, 0, 0, 0)  # the small filter that changes nothing


class FilterError(ValueError):
    pass


def large_taps(channels: int) -> int:
    return channels * len(RINGS_5X5) + 1


def pack(coefficients: np.ndarray) -> bytes:
    """(channels, taps) int16 -> bytes."""
    return struct.pack(f"<{coefficients.size}h", *coefficients.reshape(-1).tolist())


def unpack(data: bytes, channels: int) -> np.ndarray:
    """bytes -> (channels, taps); the length tells the small filter from the large one."""
    for taps in (SMALL_TAPS, large_taps(channels)):
        if len(data) == channels * taps * 2:
            return np.array(struct.unpack(f"<{channels * taps}h", data), np.int64).reshape(channels, taps)
    raise FilterError(f"restoration filter of {len(data)} bytes, expected {channels * SMALL_TAPS * 2} "
                      f"or {channels * large_taps(channels) * 2}")


def describe(data: bytes | None) -> str:
    """What a blob's filter field holds, for ``sdfs info``: "none", "3x3" or "5x5 cross-channel"."""
    if data is None:
        return "none"
    try:
        return "3x3" if unpack(data, 3).shape[1] == SMALL_TAPS else "5x5 cross-channel"
    except FilterError as exc:
        return f"invalid ({exc})"


def _padded(image: torch.Tensor, margin: int) -> torch.Tensor:
    mode = "reflect" if min(image.shape[-2:]) > margin else "replicate"
    return F.pad(image, (margin,) * 4, mode=mode)


def _ring_sums(padded: torch.Tensor, rings, margin: int, rows: slice, cols: slice) -> torch.Tensor:
    """(1, C, len(rings), h, w): per channel, the sum over each ring around each pixel of rows x cols
    (taken with the slices' steps) of the image that ``padded`` holds with ``margin`` pixels of border."""
    def shifted(dy, dx):
        return padded[:, :, rows.start + margin + dy:rows.stop + margin + dy:rows.step,
                      cols.start + margin + dx:cols.stop + margin + dx:cols.step]
    return torch.stack([sum(shifted(dy, dx) for dy, dx in ring) for ring in rings], dim=2)


def apply(image: torch.Tensor, coefficients: np.ndarray) -> torch.Tensor:
    """Filter (1, C, H, W) pixels in [-1, 1] with (C, taps) integer coefficients (in float32).

    Runs on strips of ``APPLY_ROWS`` rows, so the ring sums of a large photo never all sit in memory.
    """
    image = image.float()  # a GPU decoder hands over float16, which CPU convolutions handle poorly
    height, width = image.shape[-2:]
    w = torch.as_tensor(coefficients, dtype=image.dtype, device=image.device) / UNITS
    small = w.shape[1] == SMALL_TAPS
    rings, margin = (RINGS_3X3, 1) if small else (RINGS_5X5, 2)
    padded, out = _padded(image, margin), torch.empty_like(image)
    for top in range(0, height, APPLY_ROWS):
        rows = slice(top, min(top + APPLY_ROWS, height), 1)
        sums = _ring_sums(padded, rings, margin, rows, slice(0, width, 1))[0]  # (C, rings, h, w)
        if small:  # each channel from its own rings
            out[0, :, rows] = (w[:, :-1, None, None] * sums).sum(1) + w[:, -1, None, None]
        else:  # each channel from every channel's rings
            out[0, :, rows] = torch.einsum("ok,khw->ohw", w[:, :-1], sums.flatten(0, 1)) + w[:, -1, None, None]
    return out


def fit(decoded: torch.Tensor, target: torch.Tensor, region: tuple[slice, slice],
        coded_bytes: int | None = None) -> np.ndarray | None:
    """The (C, taps) coefficients that best map ``decoded`` to ``target`` inside ``region``.

    Both are (1, C, H, W) in [-1, 1]. The small filter, or None when it would not lower the squared
    error; the large one instead where ``coded_bytes`` (the coded latent's size) is given and the
    large one's gain over the small one is worth its extra bytes.
    """
    decoded, target = decoded.float().cpu(), target.float().cpu()
    channels = decoded.shape[1]
    rows, cols = region
    stride = max(1, math.ceil(math.sqrt((rows.stop - rows.start) * (cols.stop - cols.start) / FIT_SAMPLES)))
    rows, cols = slice(rows.start, rows.stop, stride), slice(cols.start, cols.stop, stride)
    wanted = target[0, :, rows, cols].reshape(channels, -1).double()
    before = float((decoded[0, :, rows, cols].reshape(channels, -1).double() - wanted).square().sum())
    sums = _ring_sums(_padded(decoded, 2), RINGS_5X5, 2, rows, cols)[0].reshape(channels, len(RINGS_5X5), -1)
    ones = torch.ones_like(wanted[:1])
    own = torch.cat([sums[:, :3].double(), ones.expand(channels, 1, -1)], dim=1)  # each output reads its channel
    small, small_error = _solve(own, wanted)
    if small_error >= before:
        return None
    if coded_bytes is None or small_error <= 0:
        return small
    shared = torch.cat([sums.reshape(-1, sums.shape[-1]).double(), ones])  # every output reads every channel
    large, large_error = _solve(shared, wanted)
    extra = (large.size - small.size) * 2
    gain_db = 10 * math.log10(small_error / max(large_error, 1e-12))
    return large if gain_db > DB_PER_PERCENT_OF_BYTES * 100 * extra / (coded_bytes + small.size * 2) else small


def _solve(design: torch.Tensor, wanted: torch.Tensor) -> tuple[np.ndarray, float]:
    """Least squares of (C, samples) ``wanted`` on a (taps, samples) design shared by every channel or a
    (C, taps, samples) one per channel; the (C, taps) int16 coefficients and their squared error."""
    inputs = design.transpose(-1, -2)  # (samples, taps) or (C, samples, taps)
    shared = design.dim() == 2
    solution = torch.linalg.lstsq(inputs, wanted.T if shared else wanted[..., None]).solution
    solution = solution.T if shared else solution[..., 0]
    stored = np.clip(np.rint(solution.numpy() * UNITS), -32768, 32767).astype(np.int64)
    weights = torch.from_numpy(stored / UNITS)
    predicted = (inputs @ weights.T).T if shared else (inputs @ weights[..., None])[..., 0]
    return stored, float((predicted - wanted).square().sum())
