"""Decoder-side smoothing: asked for by unrefined blobs only, and worth it on a real photo."""

import numpy as np
import torch

from sdfs.codec import Codec, CodecConfig
from sdfs.codec.container import Blob
from sdfs.codec.images import ImageData
from sdfs.codec.postfilter import smooth
from tests.conftest import psnr


def test_smooth_keeps_shape_and_flat_areas_and_sigma_zero_is_identity():
    image = torch.rand(1, 3, 20, 30)
    assert smooth(image, 0) is image
    assert smooth(image, 0.8).shape == image.shape
    flat = torch.full((1, 3, 9, 9), 0.25)
    assert torch.allclose(smooth(flat, 1.5), flat)
    assert smooth(image, 0.8).std() < image.std()


def test_unrefined_blobs_ask_for_smoothing_and_it_pays(taesd, kodak_crop):
    smoothed_codec = Codec(taesd, CodecConfig(bits=5))
    plain_codec = Codec(taesd, CodecConfig(bits=5, smoothing=0))
    smoothed, plain = smoothed_codec.encode(kodak_crop), plain_codec.encode(kodak_crop)
    assert Blob.from_bytes(smoothed).smoothing == 80 and Blob.from_bytes(plain).smoothing is None
    assert Blob.from_bytes(smoothed).payload == Blob.from_bytes(plain).payload
    gain = psnr(smoothed_codec.decode(smoothed).pixels, kodak_crop.pixels) - \
        psnr(plain_codec.decode(plain).pixels, kodak_crop.pixels)
    assert gain > 0.1, f"smoothing gained only {gain:.2f} dB"


def test_refined_blobs_decode_unsmoothed(taesd, kodak_crop):
    small = ImageData(np.ascontiguousarray(kodak_crop.pixels[:64, :64]))
    assert Blob.from_bytes(Codec(taesd, CodecConfig(bits=5, effort=1)).encode(small)).smoothing is None
