"""A restoration filter fitted per image by the encoder and applied by the decoder.

The tiny decoders' output of a quantised latent is off in two ways the encoder can measure,
since it has the photo: each channel's gain and offset drift, and quantisation error comes out
as high-frequency texture that is not in the photo. A symmetric 3x3 filter per channel
(weights for the pixel, the sum of its four edge neighbours and the sum of its four corners,
plus an offset) fitted by least squares to the original corrects both: +1.5 dB PSNR and +7
SSIMULACRA2 on unrefined Kodak crops at 5 bits, +0.3 dB / +1 on refined ones
(docs/BENCHMARKS.md), for 24 bytes. The encoder keeps the filter only where it lowers the
error; old blobs carry none and decode as before.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

TAPS = 4  # per channel: centre, edge-neighbour sum, corner sum, offset
UNITS = 4096  # coefficients are stored as int16 in 1/UNITS
FIT_SAMPLES = 1 << 20  # pixels per channel the fit looks at (a strided grid on larger images)
IDENTITY = (UNITS, 0, 0, 0)

_EDGES = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
_CORNERS = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])


class FilterError(ValueError):
    pass


def pack(coefficients: np.ndarray) -> bytes:
    """(channels, TAPS) int16 -> bytes."""
    return struct.pack(f"<{coefficients.size}h", *coefficients.reshape(-1).tolist())


def unpack(data: bytes, channels: int) -> np.ndarray:
    if len(data) != channels * TAPS * 2:
        raise FilterError(f"restoration filter of {len(data)} bytes, expected {channels * TAPS * 2}")
    return np.array(struct.unpack(f"<{channels * TAPS}h", data), np.int64).reshape(channels, TAPS)


def _features(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel sums of the 4 edge and the 4 corner neighbours of (1, C, H, W), borders mirrored."""
    channels = image.shape[1]
    padded = F.pad(image, (1, 1, 1, 1), mode="reflect" if min(image.shape[-2:]) > 1 else "replicate")
    kernels = [k.to(image.dtype).to(image.device).expand(channels, 1, 3, 3) for k in (_EDGES, _CORNERS)]
    return tuple(F.conv2d(padded, k, groups=channels) for k in kernels)


def apply(image: torch.Tensor, coefficients: np.ndarray) -> torch.Tensor:
    """Filter (1, C, H, W) pixels in [-1, 1] with (C, TAPS) integer coefficients (in float32)."""
    image = image.float()  # a GPU decoder hands over float16, which CPU convolutions handle poorly
    w = torch.as_tensor(coefficients, dtype=image.dtype, device=image.device) / UNITS
    edges, corners = _features(image)
    view = (1, -1, 1, 1)
    return (w[:, 0].view(view) * image + w[:, 1].view(view) * edges + w[:, 2].view(view) * corners
            + w[:, 3].view(view))


def fit(decoded: torch.Tensor, target: torch.Tensor, region: tuple[slice, slice]) -> np.ndarray | None:
    """The (C, TAPS) coefficients that best map ``decoded`` to ``target`` inside ``region``.

    Both are (1, C, H, W) in [-1, 1]; None when the filter would not lower the squared error.
    """
    decoded, target = decoded.float().cpu(), target.float().cpu()
    edges, corners = _features(decoded)
    rows, cols = region
    stride = max(1, math.ceil(math.sqrt((rows.stop - rows.start) * (cols.stop - cols.start) / FIT_SAMPLES)))
    window = (0, slice(None), slice(rows.start, rows.stop, stride), slice(cols.start, cols.stop, stride))
    pixel, edge, corner, wanted = (t[window].reshape(t.shape[1], -1).double() for t in (decoded, edges, corners, target))
    coefficients, before, after = [], 0.0, 0.0
    for c in range(decoded.shape[1]):
        design = torch.stack([pixel[c], edge[c], corner[c], torch.ones_like(pixel[c])], dim=1)
        solution = torch.linalg.lstsq(design, wanted[c][:, None]).solution[:, 0]
        stored = np.clip(np.rint(solution.numpy() * UNITS), -32768, 32767).astype(np.int64)
        before += float(((pixel[c] - wanted[c]) ** 2).sum())
        after += float(((design @ torch.from_numpy(stored / UNITS) - wanted[c]) ** 2).sum())
        coefficients.append(stored)
    return np.array(coefficients) if after < before else None
