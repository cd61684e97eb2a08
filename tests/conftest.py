"""Shared test fixtures: ../shared (models, Kodak, awkward inputs), offline hub cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SDFS_SHARED", REPO.parent / "shared")).resolve()
KODAK = SHARED / "data" / "kodak"
AWKWARD = SHARED / "data" / "awkward"
VAE_APPROX = SHARED / "models" / "vae_approx"

os.environ.setdefault("HF_HUB_CACHE", str(SHARED / "hf" / "hub"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")


@pytest.fixture(scope="session")
def taesd():
    from sdfs.codec import load_model

    return load_model("madebyollin/taesd", device="cpu")


@pytest.fixture(scope="session")
def taesd3():
    from sdfs.codec import load_model

    return load_model("madebyollin/taesd3", device="cpu")


@pytest.fixture(scope="session")
def taesd_own():
    """TAESD with its own encoder, not sdfs's fine-tuned one: for tests of what lifts weak latents."""
    from sdfs.codec import load_model

    return load_model("madebyollin/taesd", device="cpu", tuned_encoder=False)


@pytest.fixture(scope="session")
def kodak_crop():
    """A 128x192 RGB crop of kodim23 (parrots): cheap enough for model tests."""
    from sdfs.codec import read_image

    img = read_image(KODAK / "kodim23.png")
    img.pixels = np.ascontiguousarray(img.pixels[160:288, 288:480])
    return img


from tests.library import library  # noqa: E402,F401 - the photo-library fixture of the filesystem tests
