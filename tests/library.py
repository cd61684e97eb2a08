"""A small photo library for filesystem tests, and the check that a tree serves it correctly."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import AWKWARD, KODAK, psnr

KODAK_FILES = ["kodim03.png", "kodim15.png"]
IMAGES = {*KODAK_FILES, "concert.jpg"}  # the rest of the library must stay byte-exact


@pytest.fixture
def library(tmp_path) -> Path:
    """A small photo library: Kodak images, a grey JPEG, text, a broken JPEG, an empty file, a subfolder."""
    src = tmp_path / "library"
    (src / "sub" / "deeper").mkdir(parents=True)
    for name in KODAK_FILES:
        shutil.copy(KODAK / name, src / name)
    shutil.copy(AWKWARD / "gray_concert.jpg", src / "sub" / "concert.jpg")
    (src / "notes.txt").write_text("photos from the trip\n" * 100)
    (src / "sub" / "deeper" / "data.bin").write_bytes(os.urandom(300_000))
    jpeg = (AWKWARD / "gray_concert.jpg").read_bytes()
    (src / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (src / "empty.png").write_bytes(b"")
    shutil.copy(AWKWARD / "tiny_2x2_fdcce6.png", src / "icon.png")
    return src


def expected_pixels(path: Path) -> np.ndarray:
    from sdfs.codec import read_image

    return read_image(path).pixels


def check_library(src: Path, mnt: Path, decode_psnr: dict[str, float]) -> None:
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        mine = mnt / rel
        assert mine.exists(), rel
        if path.is_dir():
            assert mine.is_dir()
            continue
        data = mine.read_bytes()
        assert os.stat(mine).st_size == len(data), f"{rel}: ls -l size differs from the bytes read"
        if rel.name in IMAGES:
            image = Image.open(io.BytesIO(data))
            assert image.format == "PNG"
            image.load()
            original = expected_pixels(path)
            assert np.asarray(image).shape == original.shape, rel
            if rel.name in decode_psnr:
                assert_served_as_stored(mine, np.asarray(image), original, decode_psnr[rel.name])
        else:
            assert data == path.read_bytes(), f"{rel} is not byte-exact"




def assert_served_as_stored(path: Path, served: np.ndarray, original: np.ndarray, latent_psnr: float) -> None:
    """A latent reads back as well as `sdfs decode` draws it (``latent_psnr``); AVIF as the guard scored it."""
    from sdfs.metrics import ssimulacra2

    if os.getxattr(path, "user.sdfs.codec").startswith(b"avif"):
        guard = json.loads(os.getxattr(path, "user.sdfs.guard"))
        assert ssimulacra2(original, served) == pytest.approx(guard["avif"]["score"], abs=0.01), path
        assert guard["avif"]["score"] >= float(guard["floor"].partition(":")[2]), path
    else:
        assert psnr(served, original) >= latent_psnr - 0.01, path
