"""Fixed rotations of a latent family's channels: the principal components sdfs quantises.

SD3's sixteen latent channels are strongly correlated (mean |r| 0.40 on photos), and the context
coder predicts each plane from only the two before it, so most of that redundancy was paid for.
Rotating every latent cell onto the family's principal components (a KLT fitted once, on the
encoder's training photos, by ``benchmarks/fit_rotation.py``) and quantising them, finer steps
for the stronger ones (``quant.RotatedQuantizer``), gains 0.3-0.8 dB and 15-22 SSIMULACRA2 at
equal bytes on Kodak (docs/BENCHMARKS.md). SD1's four channels gain nothing (the coder already
sees them all), so no rotation ships for it.

A rotation is identified in every blob by its number, so a published one never changes: a
better fit gets a new number and the old one stays readable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("weights")
# number -> (family, file in weights/): a (C, C) float16 array whose rows are the components
ROTATIONS: dict[int, tuple[str, str]] = {1: ("sd3", "sd3_channel_rotation_v1.npy")}
NO_ROTATION = 0


class RotationError(ValueError):
    """A blob names a rotation this sdfs does not have, or one of the wrong size."""


def rotation_for_family(family: str) -> int:
    """The newest rotation shipped for ``family``, or NO_ROTATION."""
    numbers = [number for number, (name, _) in ROTATIONS.items() if name == family]
    return max(numbers, default=NO_ROTATION)


@lru_cache(maxsize=None)
def rotation_matrix(number: int, channels: int) -> np.ndarray:
    """Rotation ``number`` as float32 (channels, channels); rows are components, largest variance first."""
    if number not in ROTATIONS:
        raise RotationError(f"channel rotation {number} is unknown to this sdfs (a newer sdfs wrote it?)")
    path = WEIGHTS / ROTATIONS[number][1]
    try:
        matrix = np.load(path).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise RotationError(f"{path}: cannot read channel rotation {number} ({exc})") from exc
    if matrix.shape != (channels, channels):
        raise RotationError(f"channel rotation {number} is {matrix.shape[0]}x{matrix.shape[1]}, "
                            f"the latent has {channels} channels")
    matrix.flags.writeable = False
    return matrix
