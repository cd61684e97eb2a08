"""Tiled encode/decode of a 1024x1024 image against a whole-image pass: the seam error stays small."""

import numpy as np
import pytest
import torch
from PIL import Image

from sdfs.codec import Codec, CodecConfig
from sdfs.codec.images import ImageData
from sdfs.codec.tiling import run_tiled, tile_windows
from tests.conftest import KODAK, psnr


def test_windows_cover_the_grid_once():
    seen = np.zeros((37, 50), int)
    for cy, cx, wy, wx in tile_windows(37, 50, 16, 4):
        seen[cy, cx] += 1
        assert wy.start <= cy.start and wy.stop >= cy.stop
    assert (seen == 1).all()


def test_run_tiled_is_exact_for_pointwise_functions():
    x = torch.randn(1, 4, 40, 56)
    out = run_tiled(lambda t: t.repeat_interleave(8, -1).repeat_interleave(8, -2) * 2, x, 8, 16, 2)
    assert torch.equal(out, x.repeat_interleave(8, -1).repeat_interleave(8, -2) * 2)


@pytest.fixture(scope="module")
def big_image():
    im = Image.open(KODAK / "kodim23.png").convert("RGB").resize((1024, 1024), Image.LANCZOS)
    return ImageData(np.asarray(im).copy())


def test_seam_error_of_tiled_decode_and_encode(taesd, big_image):
    whole = Codec(taesd, CodecConfig(encode_tile=2048, decode_tile=256))
    tiled = Codec(taesd, CodecConfig(encode_tile=512, decode_tile=48))
    blob = whole.encode(big_image)
    reference = whole.decode(blob).pixels
    decoded_in_tiles = tiled.decode(blob).pixels
    seam_psnr = psnr(decoded_in_tiles, reference)
    print(f"tiled decode vs whole: {seam_psnr:.1f} dB, max abs {np.abs(decoded_in_tiles.astype(int) - reference).max()}")
    assert seam_psnr > 45
    encoded_in_tiles = whole.decode(tiled.encode(big_image)).pixels
    assert psnr(encoded_in_tiles, reference) > 35
