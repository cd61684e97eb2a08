"""LEB128 unsigned varints and the zigzag map for signed values, shared by the container, the quantiser's
parameters and the entropy coder's side information."""

from __future__ import annotations


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def zigzag(value: int) -> int:
    """Signed -> unsigned: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    return value << 1 if value >= 0 else (-value << 1) - 1


def unzigzag(value: int) -> int:
    return value >> 1 if not value & 1 else -((value + 1) >> 1)


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
