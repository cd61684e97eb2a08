"""A bit writer and reader with signed Exp-Golomb codes, for the entropy coder's side information."""

from __future__ import annotations

from .varint import unzigzag, zigzag

MAX_PREFIX = 30  # longest Exp-Golomb prefix a reader accepts: bounds what corrupt data can ask for


class BitWriter:
    def __init__(self) -> None:
        self._bits: list[int] = []

    def write(self, value: int, count: int) -> None:
        """``value`` in ``count`` bits, most significant first."""
        if value < 0 or value >> count:
            raise ValueError(f"{value} does not fit in {count} bits")
        self._bits += [(value >> i) & 1 for i in range(count - 1, -1, -1)]

    def write_signed_golomb(self, value: int, order: int) -> None:
        """Exp-Golomb code of order ``order`` of the zigzag map of ``value`` (0, -1, 1, -2, ...)."""
        self.write_golomb(zigzag(value), order)

    def write_golomb(self, value: int, order: int) -> None:
        """Exp-Golomb code of order ``order`` of ``value`` >= 0."""
        code = value + (1 << order)
        length = code.bit_length()
        self._bits += [0] * (length - 1 - order)
        self.write(code, length)

    def __len__(self) -> int:
        return len(self._bits)

    def to_bytes(self) -> bytes:
        """The bits so far, zero-padded to whole bytes."""
        bits = self._bits + [0] * (-len(self._bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


class BitReader:
    def __init__(self, data: bytes, error: type[Exception]) -> None:
        self._value = int.from_bytes(data, "big")
        self._size = 8 * len(data)
        self._pos = 0
        self._error = error

    def read(self, count: int) -> int:
        if self._pos + count > self._size:
            raise self._error("side information truncated")
        self._pos += count
        return (self._value >> (self._size - self._pos)) & ((1 << count) - 1)

    def read_signed_golomb(self, order: int) -> int:
        return unzigzag(self.read_golomb(order))

    def read_golomb(self, order: int) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros > MAX_PREFIX:
                raise self._error("side information holds an over-long code")
        code = (1 << (zeros + order)) | self.read(zeros + order)
        return code - (1 << order)

    def padding_is_clean(self) -> bool:
        """True when fewer than 8 bits are left and all of them are zero."""
        left = self._size - self._pos
        return left < 8 and not self._value & ((1 << left) - 1)
