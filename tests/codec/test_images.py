"""Every file in ../shared/data/awkward is handled correctly or refused with a one-line reason."""

import io

import numpy as np
import pytest
from PIL import Image

from sdfs.codec import ImageTooLargeError, NotAnImageError, read_image
from tests.conftest import AWKWARD, psnr


@pytest.fixture(scope="module")
def codec(taesd):
    from sdfs.codec import Codec

    return Codec(taesd)


def roundtrip(codec, img):
    out = codec.decode(codec.encode(img))
    assert (out.width, out.height, out.mode) == (img.width, img.height, img.mode)
    return out


def test_exif_orientation_is_applied(codec):
    img = read_image(AWKWARD / "orient6_Landscape_6.jpg")
    assert (img.width, img.height) == (600, 450)  # stored 450x600, orientation 6
    assert img.icc is not None
    out = roundtrip(codec, img)
    assert out.icc == img.icc
    png = Image.open(io.BytesIO(out.to_png_bytes()))
    assert png.size == (600, 450) and png.getexif().get(0x0112, 1) == 1
    assert psnr(out.pixels, img.pixels) > 20


def test_cmyk_goes_through_its_icc_profile_to_rgb(codec):
    path = AWKWARD / "cmyk_Channel_digital_image_CMYK_color.jpg"
    assert Image.open(path).mode == "CMYK"
    img = read_image(path)
    assert img.mode == "RGB" and img.icc is None  # converted to sRGB, the CMYK profile no longer applies
    naive = np.asarray(Image.open(path).convert("RGB"))
    assert not np.array_equal(naive, img.pixels)  # the profile was used
    out = roundtrip(codec, img)
    assert psnr(out.pixels, img.pixels) > 18  # a detailed photo; TAESD's own ceiling is ~21 dB here


def test_grey_jpeg_comes_back_grey_with_odd_height(codec):
    img = read_image(AWKWARD / "gray_concert.jpg")
    assert img.mode == "L" and (img.width, img.height) == (400, 267)
    out = roundtrip(codec, img)
    assert out.pixels.ndim == 2 and psnr(out.pixels, img.pixels) > 20


def test_sixteen_bit_rgb_png(codec):
    img = read_image(AWKWARD / "rgb16_Flag_of_the_Netherlands-16bit.png")
    assert img.mode == "RGB" and img.pixels.dtype == np.uint8 and (img.width, img.height) == (900, 600)
    out = roundtrip(codec, img)
    assert psnr(out.pixels, img.pixels) > 25


def test_sixteen_bit_grey_png_scales_to_eight_bits(codec):
    path = AWKWARD / "gray16_flower_foveon_linear.png"
    raw = np.asarray(Image.open(path))
    img = read_image(path)
    assert img.mode == "L" and (img.width, img.height) == (2267, 1513)
    assert np.array_equal(img.pixels, ((raw.astype(np.int64) + 128) // 257).astype(np.uint8))
    out = roundtrip(codec, img)
    assert psnr(out.pixels, img.pixels) > 25


def test_two_by_two_png(codec):
    img = read_image(AWKWARD / "tiny_2x2_fdcce6.png")
    assert (img.width, img.height, img.mode) == (2, 2, "RGB")
    out = roundtrip(codec, img)
    assert np.abs(out.pixels.astype(int) - img.pixels.astype(int)).max() < 16  # one flat colour


def test_alpha_is_kept_losslessly(codec):
    img = read_image(AWKWARD / "alpha_car-2.out.png")
    assert img.mode == "RGBA"
    out = roundtrip(codec, img)
    assert np.array_equal(out.alpha, img.alpha)
    opaque = img.alpha == 255
    assert psnr(out.pixels[opaque], img.pixels[opaque]) > 20


def test_large_misnamed_png_is_read_by_content_and_bomb_limit_applies():
    path = AWKWARD / "large_food-1.out.alpha.jpg"
    img = read_image(path)
    assert (img.width, img.height, img.mode) == (6000, 4000, "RGBA")
    with pytest.raises(ImageTooLargeError) as err:
        read_image(path, max_pixels=10_000_000)
    message = str(err.value)
    assert "large_food-1.out.alpha.jpg" in message and "--max-pixels" in message and "\n" not in message


@pytest.mark.parametrize("name", ["MANIFEST.tsv", "SHA256SUMS"])
def test_non_images_are_refused_in_one_line(name):
    with pytest.raises(NotAnImageError) as err:
        read_image(AWKWARD / name)
    assert name in str(err.value) and "\n" not in str(err.value)


def test_truncated_and_animated_inputs_are_refused(tmp_path):
    data = (AWKWARD / "gray_concert.jpg").read_bytes()
    with pytest.raises(NotAnImageError, match="truncated|broken"):
        read_image(data[: len(data) // 3], name="cut.jpg")
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(NotAnImageError, match="2 frames"):
        read_image(tmp_path / "anim.gif")
    with pytest.raises(NotAnImageError):
        read_image(b"", name="empty")


def test_palette_modes():
    im = Image.new("P", (16, 8))
    im.putpalette([v for i in range(256) for v in (i, i, i)])
    buf = io.BytesIO()
    im.save(buf, "PNG")
    assert read_image(buf.getvalue()).mode == "L"  # a grey palette stays grey
    rgba = Image.new("RGBA", (16, 8), (10, 200, 30, 128)).convert("P")
    rgba.info["transparency"] = 0
    buf = io.BytesIO()
    Image.new("LA", (5, 3), (77, 100)).save(buf, "PNG")
    la = read_image(buf.getvalue())
    assert la.mode == "LA" and la.alpha.max() == 100 and la.pixels.max() == 77
