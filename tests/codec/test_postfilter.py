"""The restoration filter: fitted by the encoder, recorded in the blob, worth its bytes on real photos."""

import math

import numpy as np
import pytest
import torch

from sdfs.codec import Codec, CodecConfig, CodecError
from sdfs.codec import postfilter
from sdfs.codec.container import Blob
from sdfs.codec.images import ImageData, read_image
from tests.conftest import KODAK, psnr


def test_identity_coefficients_change_nothing_and_a_known_filter_is_recovered():
    image = torch.rand(1, 3, 40, 50) * 2 - 1
    identity = np.array([postfilter.IDENTITY] * 3)
    assert torch.allclose(postfilter.apply(image, identity), image)
    known = np.array([[2048, 410, 102, -41], [4096, 0, 0, 200], [1024, 512, 256, 0]])
    target = postfilter.apply(image, known)
    fitted = postfilter.fit(image, target, (slice(0, 40), slice(0, 50)))
    assert np.abs(fitted - known).max() <= 1
    assert np.array_equal(postfilter.unpack(postfilter.pack(fitted), 3), fitted)


def test_a_known_large_filter_is_recovered_where_worth_its_bytes_and_applied_in_strips(monkeypatch):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 40, 50) * 2 - 1
    rng = np.random.default_rng(0)
    known = rng.integers(-300, 300, (3, postfilter.large_taps(3)))
    known[0, 0] += 4096  # mostly each channel's own centre pixel, as a real fit comes out
    known[1, 6] += 4096
    known[2, 12] += 4096
    target = postfilter.apply(image, known)
    region = (slice(0, 40), slice(0, 50))
    fitted = postfilter.fit(image, target, region, coded_bytes=10_000)
    assert fitted.shape == known.shape and np.abs(fitted - known).max() <= 1
    assert np.array_equal(postfilter.unpack(postfilter.pack(fitted), 3), fitted)
    monkeypatch.setattr(postfilter, "APPLY_ROWS", 7)
    assert torch.allclose(postfilter.apply(image, known), target, atol=1e-6)
    small = np.array([[2048, 410, 102, -41], [4096, 0, 0, 200], [1024, 512, 256, 0]])
    monkeypatch.setattr(postfilter, "APPLY_ROWS", 256)
    whole = postfilter.apply(image, small)
    monkeypatch.setattr(postfilter, "APPLY_ROWS", 7)
    assert torch.allclose(postfilter.apply(image, small), whole, atol=1e-6)
    # a target the small filter nearly reaches: the large one's little gain pays on a big blob only
    nearly = postfilter.apply(image, np.array([[3000, 300, 100, 50]] * 3)) + 0.01 * torch.randn(1, 3, 40, 50)
    assert postfilter.fit(image, nearly, region, coded_bytes=1_000_000).shape == known.shape
    assert postfilter.fit(image, nearly, region, coded_bytes=2_000).shape == (3, postfilter.SMALL_TAPS)


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
    assert len(fitted) - len(plain) <= 2 + 2 * 3 * postfilter.large_taps(3)
    gain = psnr(fitted_codec.decode(fitted).pixels, crop.pixels) - psnr(plain_codec.decode(plain).pixels, crop.pixels)
    assert gain > (0.3 if effort == 0 else 0.05), f"the filter gained only {gain:.2f} dB"


def test_on_a_whole_photo_the_encoder_takes_the_large_filter_and_it_beats_the_small_one(taesd, monkeypatch):
    photo = read_image(KODAK / "kodim23.png")
    codec = Codec(taesd, CodecConfig(bits=5))
    large = codec.encode(photo)
    assert Codec.info(large).restoration == "5x5 cross-channel"
    monkeypatch.setattr(postfilter, "DB_PER_PERCENT_OF_BYTES", math.inf)
    small = codec.encode(photo)
    assert Codec.info(small).restoration == "3x3" and len(large) - len(small) == 2 * 3 * (19 - 4)
    gain = psnr(codec.decode(large).pixels, photo.pixels) - psnr(codec.decode(small).pixels, photo.pixels)
    assert gain > 0.03, f"the large filter gained only {gain:.3f} dB"


def test_a_forged_filter_length_is_a_codec_error(taesd, kodak_crop):
    codec = Codec(taesd)
    blob = Blob.from_bytes(codec.encode(kodak_crop))
    blob.restoration = bytes(10)
    with pytest.raises(CodecError, match="restoration filter"):
        codec.decode(blob.to_bytes())
    assert Codec.info(blob.to_bytes()).restoration.startswith("invalid")
