import pytest

from sdfs.codec.bitstream import BitReader, BitWriter


def test_fixed_width_and_signed_golomb_values_read_back():
    values = [0, 1, -1, 2, -2, 7, -8, 1000, -1_048_575, 1 << 29]
    writer = BitWriter()
    writer.write(5, 4)
    for order in (0, 2):
        for v in values:
            writer.write_signed_golomb(v, order)
    writer.write(63, 6)
    reader = BitReader(writer.to_bytes(), ValueError)
    assert reader.read(4) == 5
    assert [reader.read_signed_golomb(order) for order in (0, 2) for _ in values] == values * 2
    assert reader.read(6) == 63 and reader.padding_is_clean()


def test_small_values_take_few_bits():
    writer = BitWriter()
    for v in (0, -1, 1):
        writer.write_signed_golomb(v, 2)
    assert len(writer) == 9


def test_truncated_and_overlong_codes_are_refused():
    writer = BitWriter()
    writer.write_signed_golomb(1 << 20, 0)
    with pytest.raises(ValueError, match="truncated"):
        BitReader(writer.to_bytes()[:2], ValueError).read_signed_golomb(0)
    with pytest.raises(ValueError, match="over-long"):
        BitReader(bytes(8), ValueError).read_signed_golomb(0)
    with pytest.raises(ValueError):
        BitWriter().write(4, 2)
