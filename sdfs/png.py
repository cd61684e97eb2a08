"""Pixels -> PNG bytes whose exact size is known from the image's shape alone.

The image data is one zlib stream of *stored* (uncompressed) deflate blocks, so the
file size is a function of width, height, channels and the metadata chunks: ``ls -l``
and ``stat`` on a mount can report it without decoding anything. Compression is not
the point here; the store holds the compact form, this is the view.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_BLOCK = 65535
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (L, LA, RGB, RGBA)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def metadata_chunks(icc: bytes | None = None, exif: bytes | None = None) -> bytes:
    """The optional chunks between IHDR and IDAT; computed once per file and stored beside it."""
    out = b""
    if icc:
        out += chunk(b"iCCP", b"icc\0\0" + zlib.compress(icc, 9))
    if exif:
        out += chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    return out


def png_size(width: int, height: int, channels: int, metadata_len: int = 0) -> int:
    raw = height * (1 + width * channels)
    blocks = max(1, -(-raw // MAX_BLOCK))
    idat = 2 + raw + 5 * blocks + 4
    return len(SIGNATURE) + (12 + 13) + metadata_len + (12 + idat) + 12


def render_png(pixels: np.ndarray, alpha: np.ndarray | None = None, metadata: bytes = b"") -> bytes:
    """PNG of (H, W) grey or (H, W, 3) RGB uint8 pixels, with optional (H, W) alpha."""
    planes = pixels[:, :, None] if pixels.ndim == 2 else pixels
    if alpha is not None:
        planes = np.concatenate([planes, alpha[:, :, None]], axis=2)
    height, width, channels = planes.shape
    rows = np.zeros((height, 1 + width * channels), np.uint8)  # filter byte 0 (None) per row
    rows[:, 1:] = planes.reshape(height, width * channels)
    raw = rows.tobytes()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
    idat = _stored_zlib(raw)
    out = b"".join([SIGNATURE, chunk(b"IHDR", ihdr), metadata, chunk(b"IDAT", idat), chunk(b"IEND", b"")])
    assert len(out) == png_size(width, height, channels, len(metadata))
    return out


def _stored_zlib(raw: bytes) -> bytes:
    parts = [b"\x78\x01"]
    count = max(1, -(-len(raw) // MAX_BLOCK))
    for i in range(count):
        block = raw[i * MAX_BLOCK:(i + 1) * MAX_BLOCK]
        final = 1 if i == count - 1 else 0
        parts.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
    parts.append(struct.pack(">I", zlib.adler32(raw)))
    return b"".join(parts)
