"""Reading input files into pixels the codec can encode, and writing pixels out.

Everything Pillow opens as a still image becomes RGB8 or grey L8 pixels plus an
optional alpha plane, with EXIF orientation applied and ICC/EXIF kept for output.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# sdfs enforces its own, user-settable limit (see read_image); Pillow's global one would
# otherwise cap it at 2x its default with an unrelated message.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_PIXELS = 128_000_000


class ImageError(ValueError):
    """An input that sdfs will not encode as an image; the message is one line for the user."""


class NotAnImageError(ImageError):
    """Not a still image Pillow can decode (text, video, animation, a broken file)."""


class ImageTooLargeError(ImageError):
    """More pixels than the configured limit (a possible decompression bomb)."""


@dataclass
class ImageData:
    """Pixels plus what must travel with them.

    ``pixels`` is (H, W, 3) uint8 RGB or (H, W) uint8 grey; ``alpha`` is (H, W) uint8 or None.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    icc: bytes | None = None
    exif: bytes | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def is_grey(self) -> bool:
        return self.pixels.ndim == 2

    @property
    def mode(self) -> str:
        return ("L" if self.is_grey else "RGB") + ("A" if self.alpha is not None else "")

    @property
    def channels(self) -> int:
        return len(self.mode)

    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8, grey replicated."""
        return np.repeat(self.pixels[:, :, None], 3, axis=2) if self.is_grey else self.pixels

    def to_pil(self) -> Image.Image:
        if self.alpha is None:
            return Image.fromarray(self.pixels, self.mode)
        return Image.fromarray(np.dstack([self.pixels, self.alpha]), self.mode)

    def save(self, target: str | Path | io.BytesIO, format: str = "PNG", **options) -> None:
        """Save with ICC and EXIF kept (where the format carries them)."""
        im = self.to_pil()
        if format.upper() in ("JPEG", "JPG") and im.mode in ("RGBA", "LA"):
            im = im.convert(im.mode[:-1])
        if self.icc:
            options.setdefault("icc_profile", self.icc)
        if self.exif:
            options.setdefault("exif", self.exif)
        im.save(target, format=format, **options)

    def to_png_bytes(self, compress_level: int = 6) -> bytes:
        buf = io.BytesIO()
        self.save(buf, "PNG", compress_level=compress_level)
        return buf.getvalue()


def read_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> ImageData:
    """Decode a file (path or bytes) into ImageData, or raise an ImageError with a one-line reason."""
    label = name or (str(source) if not isinstance(source, (bytes, bytearray)) else "<bytes>")
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with Image.open(stream) as im:
            _check_still_image(im, label, max_pixels)
            im.load()
            return _to_image_data(im)
    except ImageError:
        raise
    except FileNotFoundError:
        raise
    except UnidentifiedImageError:
        raise NotAnImageError(f"{label}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError) as exc:
        raise NotAnImageError(f"{label}: broken or truncated image ({exc})") from None


def _check_still_image(im: Image.Image, label: str, max_pixels: int) -> None:
    width, height = im.size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{label}: {width}x{height} = {width * height} pixels exceeds the limit of "
                                 f"{max_pixels} (possible decompression bomb; raise it with --max-pixels)")
    if width < 1 or height < 1:
        raise NotAnImageError(f"{label}: empty image ({width}x{height})")
    if getattr(im, "n_frames", 1) > 1:
        raise NotAnImageError(f"{label}: animated or multi-frame {im.format} ({im.n_frames} frames), not a still image")


def _to_image_data(im: Image.Image) -> ImageData:
    icc = im.info.get("icc_profile") or None
    im = ImageOps.exif_transpose(im) or im
    exif = _exif_bytes(im)
    if im.mode == "CMYK":
        im, icc = _cmyk_to_srgb(im, icc), None
    pixels, alpha = _pixels_and_alpha(im)
    if alpha is not None and bool((alpha == 255).all()):
        alpha = None
    return ImageData(pixels=np.ascontiguousarray(pixels), alpha=alpha, icc=icc, exif=exif)


def _exif_bytes(im: Image.Image) -> bytes | None:
    exif = im.getexif()
    if not exif:
        return None
    exif.pop(0x0112, None)  # orientation has been applied to the pixels
    data = exif.tobytes()
    return data if len(data) > 8 else None


def _cmyk_to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile: fall back to the naive conversion below
    return im.convert("RGB")


def _pixels_and_alpha(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _sixteen_to_eight(np.asarray(im)), None
    if mode == "F":
        return np.clip(np.asarray(im), 0, 255).round().astype(np.uint8), None
    if mode in ("1", "L"):
        return np.asarray(im.convert("L")), None
    if mode == "LA" or mode == "La":
        arr = np.asarray(im.convert("LA"))
        return arr[:, :, 0], arr[:, :, 1]
    if mode in ("P", "PA"):
        im = im.convert("RGBA") if ("transparency" in im.info or mode == "PA") else im.convert("RGB")
        pixels, alpha = _pixels_and_alpha(im)
        return (_grey_if_grey(pixels), alpha)
    if mode in ("RGBA", "RGBa"):
        arr = np.asarray(im.convert("RGBA"))
        return arr[:, :, :3], arr[:, :, 3]
    return np.asarray(im.convert("RGB")), None


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    wide = arr.astype(np.int64)
    if wide.max(initial=0) <= 255 and arr.dtype != np.uint16:
        return wide.clip(0, 255).astype(np.uint8)
    return ((wide.clip(0, 65535) + 128) // 257).astype(np.uint8)


def _grey_if_grey(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 3 and (pixels[:, :, 0] == pixels[:, :, 1]).all() and (pixels[:, :, 1] == pixels[:, :, 2]).all():
        return np.ascontiguousarray(pixels[:, :, 0])
    return pixels


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, as Pillow's convert('L')."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(rgb.astype(np.float32) @ weights + 0.5, 0, 255).astype(np.uint8)


def padded_size(size: int, factor: int, minimum: int) -> int:
    """The side the model sees: a multiple of ``factor``, at least ``minimum`` (tiny latents decode badly)."""
    return max(-(-size // factor) * factor, minimum)


def pad_to_multiple(pixels: np.ndarray, factor: int, minimum: int = 64) -> tuple[np.ndarray, int, int]:
    """Mirror-pad (H, W, ...) to a multiple of ``factor`` (and ``minimum``), centred.

    Returns the padded array and the (top, left) offset of the original; ``pad_offsets``
    recomputes the offset from the sizes alone. Centring keeps small images away from the
    corners, where the decoder is weakest.
    """
    top, left, height, width = pad_offsets(*pixels.shape[:2], factor, minimum)
    bottom, right = height - pixels.shape[0] - top, width - pixels.shape[1] - left
    if top or left or bottom or right:
        pads = ((top, bottom), (left, right)) + ((0, 0),) * (pixels.ndim - 2)
        pixels = np.pad(pixels, pads, mode="symmetric")
    return pixels, top, left


def pad_offsets(height: int, width: int, factor: int, minimum: int) -> tuple[int, int, int, int]:
    """(top, left, padded height, padded width) for an image of height x width."""
    padded_h, padded_w = padded_size(height, factor, minimum), padded_size(width, factor, minimum)
    return (padded_h - height) // 2, (padded_w - width) // 2, padded_h, padded_w
