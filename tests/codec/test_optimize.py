import numpy as np
import pytest

from sdfs.codec import Codec, CodecConfig
from sdfs.codec.images import ImageData
from tests.conftest import psnr


@pytest.fixture(scope="module")
def crop(kodak_crop):
    return ImageData(np.ascontiguousarray(kodak_crop.pixels[:64, :64]))


@pytest.mark.parametrize("quantizer", ["uniform", "palette"])
def test_effort_improves_quality_at_about_the_same_size(taesd, crop, quantizer):
    plain = Codec(taesd, CodecConfig(bits=5, quantizer=quantizer, palette_size=64))
    refined = Codec(taesd, CodecConfig(bits=5, quantizer=quantizer, palette_size=64, effort=1))
    a, b = plain.encode(crop), refined.encode(crop)
    gain = psnr(refined.decode(b).pixels, crop.pixels) - psnr(plain.decode(a).pixels, crop.pixels)
    assert gain > 0.5
    assert len(b) < len(a) * 1.1
    report = refined.last_reports[0]
    assert report.loss_after < report.loss_before


def test_effort_is_deterministic(taesd, crop):
    codec = Codec(taesd, CodecConfig(bits=5, effort=1))
    assert codec.encode(crop) == codec.encode(crop)


def test_alpha_weights_the_loss(taesd, crop):
    alpha = np.zeros(crop.pixels.shape[:2], np.uint8)
    alpha[:, :32] = 255
    with_alpha = ImageData(crop.pixels, alpha=alpha)
    codec = Codec(taesd, CodecConfig(bits=5, effort=1))
    out = codec.decode(codec.encode(with_alpha))
    plain = Codec(taesd, CodecConfig(bits=5)).decode(Codec(taesd, CodecConfig(bits=5)).encode(with_alpha))
    visible = (slice(None), slice(0, 32))
    assert psnr(out.pixels[visible], crop.pixels[visible]) > psnr(plain.pixels[visible], crop.pixels[visible])
    assert np.array_equal(out.alpha, alpha)
