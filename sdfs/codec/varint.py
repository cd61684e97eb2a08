"""LEB128 unsigned varints, shared by the container and the entropy coder's side information."""

from __future__ import annotations


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes, pos: int, error: type[Exception], max_bytes: int = 5) -> tuple[int, int]:
    """(value, position after it); raises ``error`` when truncated or longer than ``max_bytes``."""
    value = shift = 0
    for i in range(max_bytes):
        if pos + i >= len(data):
            raise error("varint truncated")
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + i + 1
    raise error("varint too long")
