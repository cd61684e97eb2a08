"""The sdfs blob: a versioned, self-describing, checksummed container.

Layout (all integers little-endian)::

    magic  b"SDL\\x1a"  (4)
    version            u8
    fields             repeated: tag u8, length varint, value
    crc32              u32 of everything before it

Unknown tags are refused (a newer writer must bump the version). Every length is
bounded by the bytes actually present, so a forged header cannot make the parser
allocate more than the blob's own size; pixel counts are bounded separately.

Version 1 wrote each integer as 4 bytes and each name (family, encoder, decoder) as its
UTF-8 text. Version 2 (written since 2026-12-07) writes integers as varints, and a name
listed in ``REGISTERED_NAMES`` as a zero byte and its index there: an sd3 blob's fields
other than its payload, quantiser and filter shrink from 127 bytes to 51, 1.7 % of a Kodak
photo's blob at 3 levels. Both versions read.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .varint import encode_varint, read_varint

MAGIC = b"SDL\x1a"
VERSION = 2  # what this sdfs writes
READABLE = (1, 2)
MAX_SIDE = 1 << 20  # pixels per side
MAX_STRING = 256

MODE_CODES = {"RGB": 1, "L": 2}
MODE_NAMES = {v: k for k, v in MODE_CODES.items()}


# Names a blob records, by the index version 2 writes for them. Append only: a blob written with an index reads
# as that name for ever. tests/codec/test_container.py checks that every name this sdfs writes is here.
REGISTERED_NAMES = (
    "sd1", "sdxl", "sd3", "flux",
    "madebyollin/taesd", "madebyollin/taesdxl", "madebyollin/taesd3", "madebyollin/taef1",
    "madebyollin/taesd+taesd_encoder_sdfs_v3",
    "madebyollin/taesd3+taesd3_encoder_sdfs_v7",
    "taesd3_decoder_sdfs_v1", "taesd3_decoder_sdfs_v2", "taesd3_decoder_sdfs_v3", "taesd3_decoder_sdfs_v4",
)
_NAME_INDEX = {name: i for i, name in enumerate(REGISTERED_NAMES)}
MAX_U32 = (1 << 32) - 1


class ContainerError(ValueError):
    """The bytes are not a valid sdfs blob; the message says why."""


@dataclass
class Blob:
    """Everything a decoder needs, plus what is carried to the output image."""

    family: str
    encoder: str
    width: int
    height: int
    mode: str  # "RGB" or "L": the colour mode of the pixels (alpha is separate)
    latent_height: int
    latent_width: int
    channels: int
    quantizer: bytes  # QuantizedLatent.params_bytes()
    coder: int
    payload: bytes
    alpha: bytes | None = None  # PNG of the alpha plane, lossless
    icc: bytes | None = None
    exif: bytes | None = None
    extras: dict = field(default_factory=dict)
    restoration: bytes | None = None  # the decoder-side filter fitted by the encoder (postfilter.py)
    coded_width: int | None = None  # the size the latent was coded at, when smaller than the image's:
    coded_height: int | None = None  # the decoder scales its output up to width x height
    decoder: str | None = None  # the sdfs-tuned decoder the encoder fitted the blob for; None: the model's own

    @property
    def coded_size(self) -> tuple[int, int]:
        """(width, height) of the picture the latent holds."""
        return (self.coded_width or self.width, self.coded_height or self.height)

    def to_bytes(self, version: int = VERSION) -> bytes:
        """The blob's bytes, in ``version`` (an older one only to test that it still reads)."""
        if version not in READABLE:
            raise ContainerError(f"cannot write blob version {version}")
        out = bytearray(MAGIC)
        out.append(version)
        for tag, name, kind in _FIELDS:
            value = getattr(self, name)
            if value is None or (kind == "dict" and not value):
                continue
            _put(out, tag, _encode_value(kind, value, version, name))
        out += struct.pack("<I", zlib.crc32(out))
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, max_pixels: int | None = None) -> "Blob":
        values = parse_fields(data)
        blob = cls(**values)
        blob._validate(max_pixels)
        return blob

    def _validate(self, max_pixels: int | None) -> None:
        if not (1 <= self.width <= MAX_SIDE and 1 <= self.height <= MAX_SIDE):
            raise ContainerError(f"implausible image size {self.width}x{self.height}")
        if max_pixels is not None and self.width * self.height > max_pixels:
            raise ContainerError(f"image of {self.width}x{self.height} exceeds the pixel limit {max_pixels}")
        if self.mode not in MODE_CODES:
            raise ContainerError(f"unknown colour mode {self.mode!r}")
        if not 1 <= self.channels <= 64:
            raise ContainerError(f"implausible latent channel count {self.channels}")
        if (self.coded_width is None) != (self.coded_height is None):
            raise ContainerError("coded size has a width but no height, or a height but no width")
        width, height = self.coded_size
        if not (1 <= width <= self.width and 1 <= height <= self.height):
            raise ContainerError(f"coded size {width}x{height} is not within image {self.width}x{self.height}")
        factor_h = -(-height // self.latent_height) if self.latent_height else 0
        factor_w = -(-width // self.latent_width) if self.latent_width else 0
        if not (self.latent_height and self.latent_width) or factor_h > 64 or factor_w > 64 \
                or self.latent_height > height + 64 or self.latent_width > width + 64:
            raise ContainerError(f"latent {self.latent_height}x{self.latent_width} does not fit image "
                                 f"{width}x{height}")


def parse_fields(data: bytes) -> dict:
    """Check magic, version and checksum, then read the fields into a dict."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ContainerError("blob must be bytes")
    data = bytes(data)
    if len(data) < len(MAGIC) + 1 + 4:
        raise ContainerError(f"too short for an sdfs blob ({len(data)} bytes)")
    if data[:4] != MAGIC:
        raise ContainerError("not an sdfs blob (bad magic)")
    version = data[4]
    if version not in READABLE:
        raise ContainerError(f"unsupported blob version {version} (this sdfs reads versions "
                             f"{', '.join(map(str, READABLE))})")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise ContainerError("checksum mismatch: the blob is corrupt")
    values: dict = {}
    pos = 5
    while pos < len(body):
        tag = body[pos]
        length, pos = _read_varint(body, pos + 1)
        if pos + length > len(body):
            raise ContainerError(f"field {tag} runs past the end of the blob")
        if tag not in _BY_TAG:
            raise ContainerError(f"unknown field tag {tag}")
        name, kind = _BY_TAG[tag]
        if name in values:
            raise ContainerError(f"field {name} appears twice")
        values[name] = _decode_value(kind, body[pos:pos + length], name, version)
        pos += length
    missing = [name for _, name, _ in _FIELDS if name in _REQUIRED and name not in values]
    if missing:
        raise ContainerError(f"missing fields: {', '.join(missing)}")
    return values


def _put(out: bytearray, tag: int, value: bytes) -> None:
    out.append(tag)
    out += _varint(len(value))
    out += value


def _encode_value(kind: str, value, version: int, name: str) -> bytes:
    if kind == "name":
        if version >= 2 and value in _NAME_INDEX:
            return b"\0" + _varint(_NAME_INDEX[value])
        if value.startswith("\0"):
            raise ContainerError(f"field {name} cannot start with a zero character")
        return value.encode("utf-8")
    if kind == "u32":
        if not 0 <= value <= MAX_U32:
            raise ContainerError(f"field {name} = {value} does not fit 32 bits")
        return _varint(value) if version >= 2 else struct.pack("<I", value)
    if kind == "mode":
        return bytes([MODE_CODES[value]])
    if kind == "bytes":
        return bytes(value)
    if kind == "dict":
        return b"".join(k.encode("utf-8")[:MAX_STRING] + b"\0" + str(v).encode("utf-8") + b"\0"
                        for k, v in sorted(value.items()))
    raise AssertionError(kind)


def _decode_value(kind: str, raw: bytes, name: str, version: int):
    if kind == "name" and version >= 2 and raw[:1] == b"\0":
        index, end = _read_varint(raw, 1)
        if end != len(raw):
            raise ContainerError(f"field {name} is malformed")
        if index >= len(REGISTERED_NAMES):
            raise ContainerError(f"field {name} holds registered name {index}, which this sdfs does not know "
                                 f"(written by a newer one?)")
        return REGISTERED_NAMES[index]
    if kind == "name":
        if len(raw) > MAX_STRING:
            raise ContainerError(f"field {name} is too long")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ContainerError(f"field {name} is not UTF-8") from None
    if kind == "u32" and version >= 2:
        value, end = _read_varint(raw, 0)
        if end != len(raw) or value > MAX_U32:
            raise ContainerError(f"field {name} is not a 32-bit varint")
        return value
    if kind == "u32":
        if len(raw) != 4:
            raise ContainerError(f"field {name} must be 4 bytes")
        return struct.unpack("<I", raw)[0]
    if kind == "mode":
        if len(raw) != 1 or raw[0] not in MODE_NAMES:
            raise ContainerError(f"field {name} holds an unknown colour mode")
        return MODE_NAMES[raw[0]]
    if kind == "bytes":
        return raw
    if kind == "dict":
        parts = raw.split(b"\0")
        if len(parts) % 2 != 1 or parts[-1]:
            raise ContainerError(f"field {name} is malformed")
        try:
            return {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2)}
        except UnicodeDecodeError:
            raise ContainerError(f"field {name} is not UTF-8") from None
    raise AssertionError(kind)


def _varint(value: int) -> bytes:
    return encode_varint(value)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    return read_varint(data, pos, ContainerError)


_FIELDS = [
    (1, "family", "name"),
    (2, "encoder", "name"),
    (3, "width", "u32"),
    (4, "height", "u32"),
    (5, "mode", "mode"),
    (6, "latent_height", "u32"),
    (7, "latent_width", "u32"),
    (8, "channels", "u32"),
    (9, "quantizer", "bytes"),
    (10, "coder", "u32"),
    (11, "payload", "bytes"),
    (12, "alpha", "bytes"),
    (13, "icc", "bytes"),
    (14, "exif", "bytes"),
    (15, "extras", "dict"),
    (16, "restoration", "bytes"),
    (17, "coded_width", "u32"),
    (18, "coded_height", "u32"),
    (19, "decoder", "name"),
]
_BY_TAG = {tag: (name, kind) for tag, name, kind in _FIELDS}
_REQUIRED = {"family", "encoder", "width", "height", "mode", "latent_height", "latent_width", "channels",
             "quantizer", "coder", "payload"}
