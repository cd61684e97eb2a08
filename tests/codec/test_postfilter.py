"""The restoration filter: fitted by the encoder, recorded in the blob, worth its bytes on real photos."""

import numpy as np
import pytest
import torch

from sdfs.codec import Codec, CodecConfig, CodecError
from sdfs.codec import postfilter
from sdfs.codec.container import Blob
from sdfs.codec.images import ImageData
from tests.conftest import psnr


def test_identity_coefficients_change_nothing_and_a_known_filter_is_recovered():
    image = torch.rand(1, 3, 40, 50) * 2 - 1
    identity = np.array([postfilter.IDENTITY] * 3)
    assert torch.allclose(postfilter.apply(image, identity), image)
    known = np.array([[2048, 410, 102, -41], [4096, 0, 0, 200], [1024, 512, 256, 0]])
    target = postfilter.apply(image, known)
    fitted = postfilter.fit(image, target, (slice(0, 40), slice(0, 50)))
    assert np.abs(fitted - known).max() <= 1
    assert np.array_equal(postfilter.unpack(postfilter.pack(fitted), 3), fitted)


def test_a_filter_that_would_not_help_is_not_stored():
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    assert postfilter.fit(image, image.clone(), (slice(0, 16), slice(0, 16))) is None


@pytest.mark.parametrize("effort", [0, 1])
def test_the_fitted_filter_pays_for_its_bytes(taesd_own, kodak_crop, effort):
    taesd = taesd_own  # the fine-tuned encoder's latents leave the filter less to correct
    crop = kodak_crop if effort == 0 else ImageData(np.ascontiguousarray(kodak_crop.pixels[:64, :96]))
    fitted_codec = Codec(taesd, CodecConfig(bits=5, effort=effort))
    plain_codec = Codec(taesd, CodecConfig(bits=5, effort=effort, restoration=False))
    fitted, plain = fitted_codec.encode(crop), plain_codec.encode(crop)
    assert Blob.from_bytes(plain).restoration is None
    assert Blob.from_bytes(fitted).payload == Blob.from_bytes(plain).payload
    assert len(fitted) - len(plain) <= 26
    gain = psnr(fitted_codec.decode(fitted).pixels, crop.pixels) - psnr(plain_codec.decode(plain).pixels, crop.pixels)
    assert gain > (0.3 if effort == 0 else 0.05), f"the filter gained only {gain:.2f} dB"


def test_a_forged_filter_length_is_a_codec_error(taesd, kodak_crop):
    codec = Codec(taesd)
    blob = Blob.from_bytes(codec.encode(kodak_crop))
    blob.restoration = bytes(10)
    with pytest.raises(CodecError, match="restoration filter"):
        codec.decode(blob.to_bytes())
